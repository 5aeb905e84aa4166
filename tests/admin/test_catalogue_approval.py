"""Issue 12, item 5: dynamic registration cannot phish through the service catalogue (服务事项).

A client that registered itself (RFC 7591) is neither listed nor given an entry link (办理入口)
until staff approve it in the console; the entry link (initiate_login_uri) must share its origin
with a registered redirect URI, at registration, at RFC 7592 update and in the console form.
"""

from __future__ import annotations

import pytest

from idp import clients as registry
from idp.clients import ClientError, ClientSpec
from idp.extensions import db
from idp.models.audit import AuditEvent
from tests.admin.test_clients import client_fields, post_form
from tests.admin.test_registration_api import client_count, metadata, register, row, uses
from tests.conftest import make_account
from tests.oidc.conftest import REDIRECT_URI, bearer, html, reason_of

PHISHING_ENTRY = "https://gov-login.example/kjt/sso"


@pytest.fixture
def settings(settings):
    settings["CAPTCHA"] = "off"
    return settings


@pytest.fixture
def initial_token(app):
    _, token = registry.issue_initial_access_token("自助注册", 7, 5, "client_manager_1")
    return token


def catalogue_page(client, kind: str = "legal") -> str:
    response = client.get(f"/services?type={kind}")
    assert response.status_code == 200
    return html(response)


def registered(client, token: str, **overrides) -> dict:
    response = register(client, token, **overrides)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def client_events(client_id: str) -> list[dict]:
    db.session.expire_all()
    rows = db.session.execute(db.select(AuditEvent).filter_by(event="client_changed", subject=client_id)
                              .order_by(AuditEvent.id)).scalars()
    return [{"actor": r.actor, **(r.details or {})} for r in rows]


# --- the catalogue waits for approval --------------------------------------------------------


def test_a_self_registered_client_is_absent_from_the_catalogue_and_has_no_entry_link(client, initial_token):
    body = registered(client, initial_token)
    for kind in ("legal", "natural"):
        page = catalogue_page(client, kind)
        assert body["client_id"] not in page
        assert "https://rp.example/login" not in page  # no 办理入口
    assert row(body["client_id"]).approved is False


def test_an_approved_client_is_listed_with_its_entry_link_and_the_approval_is_audited(client, initial_token,
                                                                                       console):
    client_id = registered(client, initial_token)["client_id"]
    manager = console("client_manager")
    listing = html(manager.get("/admin/clients/"))
    assert f'data-client="{client_id}"' in listing and 'data-state="pending_approval"' in listing
    response = post_form(manager, f"/admin/clients/{client_id}", {}, action=f"/admin/clients/{client_id}/approve")
    assert response.status_code == 302
    page = catalogue_page(client)
    assert f'data-client="{client_id}"' in page
    assert 'href="https://rp.example/login?iss=' in page
    assert 'data-state="pending_approval"' not in html(manager.get("/admin/clients/"))
    assert client_events(client_id)[-1] == {"actor": "client_manager_1", "action": "approved",
                                            "name": metadata()["client_name"]}


def test_support_staff_cannot_approve_and_nothing_changes(client, initial_token, console):
    client_id = registered(client, initial_token)["client_id"]
    support = console("support")
    detail = html(support.get(f"/admin/clients/{client_id}"))
    assert "/approve" not in detail and 'data-reason="pending_approval"' in detail
    manager_page = html(console("client_manager").get(f"/admin/clients/{client_id}"))
    from tests.admin.conftest import form_token

    response = support.post(f"/admin/clients/{client_id}/approve", data={"csrf_token": form_token(manager_page)})
    assert response.status_code in (400, 403)
    assert row(client_id).approved is False and client_id not in catalogue_page(client)


def test_clients_declared_by_staff_are_approved(app, client):
    created, _ = registry.create(ClientSpec(name="科技计划项目管理", redirect_uris=["https://plan.example/cb"],
                                            initiate_login_uri="https://plan.example/login"))
    assert created.approved is True
    assert f'data-client="{created.client_id}"' in catalogue_page(client)


def test_a_self_registered_client_signs_users_in_before_approval(client, rp, initial_token):
    """Approval gates the catalogue only (as Keycloak and node-oidc-provider do): the system
    can be used for its own sign-in, always behind the consent page."""
    make_account("natural", "zhang_san")
    body = registered(client, initial_token)
    tokens = rp.sign_in(body["client_id"], body["client_secret"])
    assert tokens["flow"].pages == ["login", "consent"]


# --- the entry link stays on the system's own site -------------------------------------------


@pytest.mark.parametrize("entry", [
    PHISHING_ENTRY,
    "http://rp.example/login",          # another scheme
    "https://rp.example:8443/login",    # another port
    "https://login.rp.example/sso",     # another host, even a subdomain
    "https://rp.example.evil.example/login",
])
def test_registration_with_an_entry_link_on_another_origin_is_refused_and_nothing_is_stored(
        client, initial_token, entry):
    response = register(client, initial_token, initiate_login_uri=entry)
    assert response.status_code == 400
    assert response.get_json() == {"error": "invalid_client_metadata",
                                   "error_description": "initiate_login_uri: initiate_login_uri_origin_mismatch"}
    assert client_count() == 0 and uses(initial_token) == 0


def test_the_same_origin_is_compared_with_default_ports_and_case(client, initial_token):
    body = registered(client, initial_token, initiate_login_uri="HTTPS://RP.example:443/login")
    assert row(body["client_id"]).initiate_login_uri == "HTTPS://RP.example:443/login"


def test_an_update_to_another_origin_is_refused_and_the_old_values_are_kept(client, initial_token):
    body = registered(client, initial_token)
    uri = body["registration_client_uri"].removeprefix("http://localhost")
    changed = metadata(client_id=body["client_id"], initiate_login_uri=PHISHING_ENTRY, client_name="新名称")
    response = client.put(uri, json=changed, headers=bearer(body["registration_access_token"]))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_client_metadata"
    stored = row(body["client_id"])
    assert stored.initiate_login_uri == "https://rp.example/login" and stored.name == metadata()["client_name"]


def test_an_update_moving_the_redirect_uris_and_entry_link_to_another_site_needs_approval_again(
        client, initial_token):
    body = registered(client, initial_token)
    registry.approve(row(body["client_id"]), "client_manager_1")
    assert body["client_id"] in catalogue_page(client)
    uri = body["registration_client_uri"].removeprefix("http://localhost")
    moved = metadata(client_id=body["client_id"], redirect_uris=["https://gov-login.example/cb"],
                     post_logout_redirect_uris=None, backchannel_logout_uri=None,
                     initiate_login_uri=PHISHING_ENTRY)
    response = client.put(uri, json=moved, headers=bearer(body["registration_access_token"]))
    assert response.status_code == 200, response.get_json()
    stored = row(body["client_id"])
    assert stored.approved is False and stored.initiate_login_uri == PHISHING_ENTRY
    page = catalogue_page(client)
    assert body["client_id"] not in page and PHISHING_ENTRY not in page
    assert client_events(body["client_id"])[-1]["action"] == "approval_withdrawn"


def test_an_update_that_changes_nothing_the_catalogue_shows_keeps_the_approval(client, initial_token):
    body = registered(client, initial_token)
    registry.approve(row(body["client_id"]), "client_manager_1")
    uri = body["registration_client_uri"].removeprefix("http://localhost")
    response = client.put(uri, json=metadata(client_id=body["client_id"], scope="openid"),
                          headers=bearer(body["registration_access_token"]))
    assert response.status_code == 200 and row(body["client_id"]).approved is True


def test_the_console_refuses_an_entry_link_on_another_origin_and_keeps_the_old_values(app, console):
    manager = console("client_manager")
    created, _ = registry.create(ClientSpec(name="高企认定", redirect_uris=[REDIRECT_URI],
                                            initiate_login_uri="https://rp.example/login"))
    response = post_form(manager, f"/admin/clients/{created.client_id}/edit",
                         client_fields(name="高企认定", initiate_login_uri=PHISHING_ENTRY))
    assert response.status_code == 400 and reason_of(response) == "initiate_login_uri_origin_mismatch"
    assert PHISHING_ENTRY in html(response)  # the message names the refused address
    assert row(created.client_id).initiate_login_uri == "https://rp.example/login"
    new = post_form(manager, "/admin/clients/new", client_fields(name="新系统", initiate_login_uri=PHISHING_ENTRY))
    assert new.status_code == 400 and reason_of(new) == "initiate_login_uri_origin_mismatch"
    assert client_count() == 1


def test_a_client_without_redirect_uris_cannot_have_an_entry_link(app):
    with pytest.raises(ClientError) as refused:
        registry.create(ClientSpec(name="对接接口", redirect_uris=[], grant_types=["client_credentials"],
                                   initiate_login_uri="https://api.example/login"))
    assert refused.value.reason == "initiate_login_uri_origin_mismatch"
    assert client_count() == 0
