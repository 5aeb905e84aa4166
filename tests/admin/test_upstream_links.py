"""Staff see an account's national platform links on its console page and may remove them;
support staff may only look."""

from __future__ import annotations

import pytest

from idp.extensions import db
from idp.models.federation import UpstreamLink
from tests.admin.conftest import form_token
from tests.conftest import audit_events, make_account, reason_of


@pytest.fixture
def settings(settings):
    settings["CAPTCHA"] = "off"
    return settings


@pytest.fixture
def linked(app):
    account = make_account("natural", "zhang_san", name="张三")
    link = UpstreamLink(account_id=account.id, issuer="https://national.example", subject="upstream-sub-1",
                        origin="create")
    db.session.add(link)
    db.session.commit()
    return account, link


def test_staff_see_the_link_on_the_user_page(console, linked):
    account, link = linked
    page = console("support").get(f"/admin/users/{account.sub}").get_data(as_text=True)
    assert f'data-link-id="{link.id}"' in page and "https://national.example" in page
    assert 'data-action="remove_upstream_link"' not in page  # support staff only look


def test_staff_remove_a_link_with_confirmation_and_it_is_audited(console, linked):
    account, link = linked
    admin = console("superadmin")
    token = form_token(admin.get(f"/admin/users/{account.sub}").get_data(as_text=True))
    unconfirmed = admin.post(f"/admin/users/{account.sub}/upstream-links/{link.id}/remove", data={"csrf_token": token})
    assert unconfirmed.status_code == 400 and reason_of(unconfirmed) == "confirmation_required"
    assert db.session.get(UpstreamLink, link.id) is not None
    done = admin.post(f"/admin/users/{account.sub}/upstream-links/{link.id}/remove",
                      data={"csrf_token": token, "confirm": "y"})
    assert done.status_code == 302
    db.session.expire_all()
    assert db.session.get(UpstreamLink, link.id) is None
    assert [e.details["by"] for e in audit_events("upstream_unlinked")] == ["staff"]


def test_a_link_of_another_account_cannot_be_removed_through_this_one(console, linked):
    account, link = linked
    other = make_account("natural", "li_si")
    admin = console("superadmin")
    token = form_token(admin.get(f"/admin/users/{other.sub}").get_data(as_text=True))
    refused = admin.post(f"/admin/users/{other.sub}/upstream-links/{link.id}/remove",
                         data={"csrf_token": token, "confirm": "y"})
    assert refused.status_code == 400 and reason_of(refused) == "no_such_link"
    assert db.session.get(UpstreamLink, link.id) is not None


def test_support_staff_cannot_remove_a_link(console, linked):
    account, link = linked
    support = console("support")
    token = form_token(support.get(f"/admin/users/{account.sub}").get_data(as_text=True))
    assert support.post(f"/admin/users/{account.sub}/upstream-links/{link.id}/remove",
                        data={"csrf_token": token, "confirm": "y"}).status_code == 403
