"""Dynamic Client Registration (RFC 7591) with initial access tokens issued in the console, and
the client configuration endpoint (RFC 7592) with the registration access token."""

from __future__ import annotations

import pytest

from idp import clients as registry
from idp.extensions import db
from idp.models.audit import AuditEvent
from idp.models.clients import Client
from idp.models.staff import InitialAccessToken
from tests.conftest import make_account
from tests.oidc.conftest import ISSUER, REDIRECT_URI, bearer


@pytest.fixture
def settings(settings):
    settings["CAPTCHA"] = "off"
    return settings


@pytest.fixture
def person(app):
    return make_account("natural", "zhang_san")


@pytest.fixture
def initial_token(app):
    """An initial access token issued in the console: valid 7 days, one registration."""
    _, token = registry.issue_initial_access_token("高企系统自助注册", 7, 1, "client_manager_1")
    return token


def metadata(**overrides) -> dict:
    data = {
        "client_name": "高新技术企业认定（自助注册）",
        "redirect_uris": [REDIRECT_URI],
        "post_logout_redirect_uris": ["https://rp.example/"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "openid profile email",
        "token_endpoint_auth_method": "client_secret_basic",
        "backchannel_logout_uri": "https://rp.example/backchannel",
        "initiate_login_uri": "https://rp.example/login",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def register(client, token: str | None, **overrides):
    headers = bearer(token) if token else {}
    return client.post("/connect/register", json=metadata(**overrides), headers=headers)


def row(client_id: str) -> Client | None:
    db.session.expire_all()
    return db.session.execute(db.select(Client).filter_by(client_id=client_id)).scalar_one_or_none()


def client_count() -> int:
    return len(db.session.execute(db.select(Client.id)).all())


def uses(token: str) -> int:
    db.session.expire_all()
    return db.session.execute(db.select(InitialAccessToken.uses)).scalar_one()


def assert_invalid_token(response) -> None:
    assert response.status_code == 401, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


# --- RFC 7591: registration ------------------------------------------------------------------


def test_a_valid_initial_access_token_registers_a_client_that_works_in_a_code_flow(client, rp, person,
                                                                                     initial_token):
    response = register(client, initial_token)
    assert response.status_code == 201, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    client_id, secret = body["client_id"], body["client_secret"]
    assert client_id.isascii() and client_id.isalnum()
    assert body["client_secret_expires_at"] == 0 and isinstance(body["client_id_issued_at"], int)
    assert body["registration_client_uri"] == f"{ISSUER}/connect/register/{client_id}"
    assert body["registration_access_token"]
    assert body["redirect_uris"] == [REDIRECT_URI] and body["scope"] == "openid profile email"
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["backchannel_logout_uri"] == "https://rp.example/backchannel"
    stored = row(client_id)
    assert stored.registered_dynamically and not stored.trusted and stored.enabled
    assert stored.registration_access_token_hash and stored.registration_access_token_hash != body[
        "registration_access_token"]
    assert stored.post_logout_redirect_uris == ["https://rp.example/"]
    assert stored.initiate_login_uri == "https://rp.example/login"
    tokens = rp.sign_in(client_id, secret)
    assert client_id in tokens["claims"]["aud"]
    assert tokens["flow"].pages == ["login", "consent"]  # a self-registered system is never trusted


def test_defaults_follow_rfc_7591_and_unsupported_metadata_is_ignored(client, initial_token):
    response = client.post("/connect/register", headers=bearer(initial_token), json={
        "client_name": "最简系统", "redirect_uris": [REDIRECT_URI], "contacts": ["ops@example.cn"],
        "tos_uri": "https://rp.example/tos", "trusted": True, "jwks": {"keys": "not a key set"}})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["grant_types"] == ["authorization_code"] and body["response_types"] == ["code"]
    assert body["token_endpoint_auth_method"] == "client_secret_basic" and body["scope"] == "openid"
    assert body["allowed_account_types"] == ["natural", "legal"]
    assert not {"contacts", "tos_uri", "trusted", "jwks"} & set(body)
    assert not row(body["client_id"]).trusted


def test_a_public_client_registers_without_a_secret_and_signs_in_with_pkce(client, rp, person, initial_token):
    response = register(client, initial_token, token_endpoint_auth_method="none", grant_types=None)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert "client_secret" not in body and "client_secret_expires_at" not in body
    assert row(body["client_id"]).secret_hash is None
    assert body["client_id"] in rp.sign_in(body["client_id"], None, auth="none", pkce=True)["claims"]["aud"]


def test_an_account_type_and_signing_algorithm_may_be_asked_for(client, initial_token):
    response = register(client, initial_token, allowed_account_types=["legal"],
                        id_token_signed_response_alg="ES256")
    assert response.status_code == 201, response.get_json()
    stored = row(response.get_json()["client_id"])
    assert stored.allowed_account_types == ["legal"] and stored.id_token_signed_response_alg == "ES256"


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer wrong-token", "Basic dXNlcjpwYXNz"])
def test_registration_without_a_valid_initial_access_token_is_401_invalid_token(client, initial_token,
                                                                               authorization):
    headers = {"Authorization": authorization} if authorization else {}
    assert_invalid_token(client.post("/connect/register", json=metadata(), headers=headers))
    assert client_count() == 0 and uses(initial_token) == 0


def test_an_expired_initial_access_token_is_401_invalid_token(app, client, clock, initial_token):
    clock.advance(7 * 86400 + 1)
    assert_invalid_token(register(client, initial_token))
    assert client_count() == 0


def test_a_revoked_initial_access_token_is_401_invalid_token(client, initial_token):
    registry.revoke_initial_access_token(registry.initial_access_tokens()[0], "client_manager_1")
    assert_invalid_token(register(client, initial_token))
    assert client_count() == 0


def test_an_initial_access_token_registers_at_most_max_uses_clients(client):
    _, token = registry.issue_initial_access_token(None, 7, 2, "client_manager_1")
    assert register(client, token, client_name="系统一").status_code == 201
    assert register(client, token, client_name="系统二").status_code == 201
    assert_invalid_token(register(client, token, client_name="系统三"))
    assert client_count() == 2 and uses(token) == 2


@pytest.mark.parametrize("uris", [
    ["https://*.rp.example/callback"], ["https://rp.example/callback#frag"], ["/callback"],
    ["javascript:alert(1)"], ["rp.example/cb"], [], "https://rp.example/callback", [42],
])
def test_invalid_redirect_uris_are_refused_with_invalid_redirect_uri_and_the_token_is_not_spent(
        client, initial_token, uris):
    response = register(client, initial_token, redirect_uris=uris)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == "invalid_redirect_uri"
    assert client_count() == 0 and uses(initial_token) == 0


def test_http_redirect_uris_are_refused_in_production_except_loopback(app, client):
    _, token = registry.issue_initial_access_token(None, 7, 5, "client_manager_1")
    app.config["ENV"] = "production"
    try:
        refused = register(client, token, redirect_uris=["http://rp.example/callback"])
        accepted = register(client, token, redirect_uris=["http://127.0.0.1:8400/callback"],
                            backchannel_logout_uri=None, post_logout_redirect_uris=None, initiate_login_uri=None)
    finally:
        app.config["ENV"] = "development"
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_redirect_uri"
    assert accepted.status_code == 201, accepted.get_json()


@pytest.mark.parametrize("overrides", [
    {"client_name": None},
    {"client_name": "   "},
    {"client_name": 42},
    {"scope": "openid admin"},
    {"grant_types": ["password"]},
    {"grant_types": "authorization_code"},
    {"response_types": ["token"]},
    {"token_endpoint_auth_method": "private_key_jwt"},
    {"token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]},
    {"post_logout_redirect_uris": ["https://rp.example/#bye"]},
    {"backchannel_logout_uri": "https://*.rp.example/bc"},
    {"allowed_account_types": ["robot"]},
    {"id_token_signed_response_alg": "none"},
    {"client_name": "带\u202e控制字符"},
], ids=lambda o: ",".join(f"{k}={v!r}" for k, v in o.items()))
def test_invalid_metadata_is_refused_with_invalid_client_metadata(client, initial_token, overrides):
    response = client.post("/connect/register", headers=bearer(initial_token),
                           json={**metadata(), **overrides} if None not in overrides.values()
                           else metadata(**overrides))
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == "invalid_client_metadata"
    assert client_count() == 0 and uses(initial_token) == 0


def test_a_duplicate_client_name_is_refused_with_invalid_client_metadata(client):
    _, token = registry.issue_initial_access_token(None, 7, 5, "client_manager_1")
    assert register(client, token).status_code == 201
    response = register(client, token, redirect_uris=["https://other.example/cb"],
                        initiate_login_uri="https://other.example/login")
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_client_metadata"
    assert "duplicate_name" in response.get_json()["error_description"]
    assert client_count() == 1


@pytest.mark.parametrize("body, content_type", [
    (b"not json", "application/json"), (b"[1, 2]", "application/json"), (b"{}", "application/json"),
    (b"client_name=x", "application/x-www-form-urlencoded"),
])
def test_a_body_that_is_not_a_json_object_of_metadata_gets_a_json_error(client, initial_token, body, content_type):
    response = client.post("/connect/register", data=body, content_type=content_type,
                           headers=bearer(initial_token))
    assert response.status_code == 400 and response.mimetype == "application/json"
    assert response.get_json()["error"] == "invalid_request"


def test_registration_is_written_to_the_audit_log(client, initial_token):
    client_id = register(client, initial_token).get_json()["client_id"]
    token_row = registry.initial_access_tokens()[0]
    event = db.session.execute(db.select(AuditEvent).filter_by(event="client_changed", subject=client_id)
                               ).scalar_one()
    assert event.actor == f"initial_access_token:{token_row.id}" and event.details["action"] == "created"
    assert initial_token not in str(event.details)


# --- RFC 7592: the client configuration endpoint ---------------------------------------------


@pytest.fixture
def registered(client, initial_token) -> dict:
    response = register(client, initial_token)
    assert response.status_code == 201
    return response.get_json()


def configuration(registered) -> str:
    return registered["registration_client_uri"].removeprefix(ISSUER)


def test_the_registration_access_token_reads_the_registration(client, registered):
    response = client.get(configuration(registered), headers=bearer(registered["registration_access_token"]))
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["client_id"] == registered["client_id"] and body["client_name"] == registered["client_name"]
    assert body["redirect_uris"] == [REDIRECT_URI] and "client_secret" not in body
    assert body["registration_access_token"] == registered["registration_access_token"]
    assert body["registration_client_uri"] == registered["registration_client_uri"]


def test_the_registration_access_token_updates_the_registration(client, rp, person, registered):
    headers = bearer(registered["registration_access_token"])
    update = metadata(client_id=registered["client_id"], client_name="高企认定（更新）",
                      redirect_uris=[REDIRECT_URI, "https://rp.example/second"], scope="openid phone")
    response = client.put(configuration(registered), json=update, headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["client_name"] == "高企认定（更新）" and body["scope"] == "openid phone"
    stored = row(registered["client_id"])
    assert stored.redirect_uris == [REDIRECT_URI, "https://rp.example/second"] and not stored.trusted
    assert registered["client_id"] in rp.sign_in(registered["client_id"], registered["client_secret"])["claims"]["aud"]
    event = db.session.execute(db.select(AuditEvent).filter_by(event="client_changed", subject=registered["client_id"])
                               .order_by(AuditEvent.id.desc())).scalars().first()
    assert event.details["action"] == "updated" and event.actor == f"client:{registered['client_id']}"


@pytest.mark.parametrize("update, error", [
    ({"client_id": None}, "invalid_request"),
    ({"client_id": "another"}, "invalid_request"),
    ({"registration_access_token": "x"}, "invalid_request"),
    ({"client_secret": "wrong"}, "invalid_request"),
    ({"redirect_uris": ["https://*.rp.example/cb"]}, "invalid_redirect_uri"),
    ({"token_endpoint_auth_method": "none"}, "invalid_client_metadata"),
    ({"scope": "openid admin"}, "invalid_client_metadata"),
])
def test_an_invalid_update_is_refused_and_changes_nothing(client, registered, update, error):
    body = metadata(client_id=registered["client_id"], client_name="不应保存")
    body.update(update)
    body = {k: v for k, v in body.items() if v is not None}
    response = client.put(configuration(registered), json=body, headers=bearer(registered["registration_access_token"]))
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == error
    stored = row(registered["client_id"])
    assert stored.name == registered["client_name"] and stored.redirect_uris == [REDIRECT_URI]


def test_the_registration_access_token_deletes_the_registration(client, registered):
    headers = bearer(registered["registration_access_token"])
    response = client.delete(configuration(registered), headers=headers)
    assert response.status_code == 204
    assert row(registered["client_id"]) is None
    assert_invalid_token(client.get(configuration(registered), headers=headers))


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_a_wrong_registration_access_token_is_401_invalid_token(client, initial_token, method):
    _, token = registry.issue_initial_access_token(None, 7, 2, "client_manager_1")
    first = register(client, token, client_name="系统一").get_json()
    second = register(client, token, client_name="系统二").get_json()
    body = metadata(client_id=first["client_id"], client_name="被改")
    for headers in ({}, bearer("wrong"), bearer(second["registration_access_token"]),
                    {"Authorization": "Basic " + first["registration_access_token"]}):
        response = getattr(client, method)(configuration(first), json=body, headers=headers)
        assert_invalid_token(response)
    stored = row(first["client_id"])
    assert stored is not None and stored.name == "系统一"


def test_a_client_registered_in_the_console_cannot_be_managed_by_the_protocol(client, registered):
    console_client, _ = registry.create(registry.ClientSpec(name="控制台注册", redirect_uris=[REDIRECT_URI]))
    assert_invalid_token(client.get(f"/connect/register/{console_client.client_id}",
                                    headers=bearer(registered["registration_access_token"])))
    assert_invalid_token(client.get("/connect/register/no-such-client",
                                    headers=bearer(registered["registration_access_token"])))


def test_a_client_disabled_in_the_console_cannot_manage_itself(client, registered):
    registry.set_enabled(registry.find(registered["client_id"]), False, "client_manager_1")
    headers = bearer(registered["registration_access_token"])
    assert client.get(configuration(registered), headers=headers).status_code == 403
    assert client.delete(configuration(registered), headers=headers).status_code == 403
    assert row(registered["client_id"]) is not None
