"""Every free-text field of the profile forms: SQL and HTML metacharacters are stored and shown
verbatim (escaped, never executed), and invalid UTF-8 is refused at its field with nothing saved."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from markupsafe import escape

from idp.extensions import db
from idp.models.accounts import Account
from tests.conftest import csrf_token, login, make_account
from tests.integration.test_profile import (
    legal_edit,
    natural_edit,
    profile_values,
    reload,
    snapshot,
)

PAYLOAD = "<script>alert(1)</script>' OR 1=1;--\"&"

NATURAL_TEXT_FIELDS = ["name", "job_title", "document_valid_until", "address"]
LEGAL_TEXT_FIELDS = ["org_name", "name", "legal_rep_name", "address"]


def _signed_in(app, client, account_type: str) -> Account:
    if account_type == "legal":
        account = make_account("legal", login_name="meta_unit", org_kind="enterprise",
                               email="unit@example.com")
        login(app, client, "meta_unit", account_type="legal")
    else:
        account = make_account(login_name="meta_person", identity_region="mainland",
                               document_type="resident_id", document_number="11010519491231002X")
        login(app, client, "meta_person")
    return account


def _edit(client, data):
    return client.post("/center/profile/edit",
                       data={**data, "csrf_token": csrf_token(client, "/center/profile/edit")})


@pytest.mark.parametrize(("account_type", "field"),
                         [("natural", f) for f in NATURAL_TEXT_FIELDS]
                         + [("legal", f) for f in LEGAL_TEXT_FIELDS])
def test_metacharacters_in_a_text_field_are_stored_verbatim_and_shown_escaped(app, client, account_type, field):
    account = _signed_in(app, client, account_type)
    value = PAYLOAD[:20] if field == "document_valid_until" else PAYLOAD
    edit = legal_edit if account_type == "legal" else natural_edit
    response = _edit(client, edit(**{field: value}))
    assert response.status_code == 302, response.get_data(as_text=True)
    assert getattr(reload(account.id), field) == value
    assert db.session.query(Account).count() == 1  # the table is still there
    page = client.get("/center/profile").get_data(as_text=True)
    assert "<script>alert(1)" not in page
    if field != "address":  # addresses are masked to their first characters
        assert profile_values(page)[field] == value
        assert str(escape(value)) in page


@pytest.mark.parametrize(("account_type", "field"),
                         [("natural", f) for f in NATURAL_TEXT_FIELDS]
                         + [("legal", f) for f in LEGAL_TEXT_FIELDS])
def test_invalid_utf8_in_a_text_field_is_refused_at_that_field_and_nothing_changes(app, client, account_type, field):
    account = _signed_in(app, client, account_type)
    before = snapshot(reload(account.id))
    edit = legal_edit if account_type == "legal" else natural_edit
    data = {**edit(), "csrf_token": csrf_token(client, "/center/profile/edit")}
    body = "&".join(f"{k}={quote(v)}" for k, v in data.items() if k != field)
    body += f"&{field}=ab%FF%FEcd"
    response = client.post("/center/profile/edit", data=body,
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    assert snapshot(reload(account.id)) == before
