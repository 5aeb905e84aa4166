"""Sign-in with the national platform against a real upstream (tests/federation/conftest.py):
first-time link, first-time create, a later sign-in, every upstream error, the link in the
user centre, single logout."""

from __future__ import annotations

import json
import socket
import threading
from urllib.parse import parse_qs, urlsplit

import pytest

from idp.extensions import db, services
from idp.login.record import Authentication
from idp.models.accounts import Account
from idp.models.federation import UpstreamLink
from idp.models.oauth import SsoSession
from tests.conftest import PASSWORD, audit_events, make_account, reason_of, session_data
from tests.federation.conftest import csrf_in, national_sign_in, path_of, sign_in_upstream, to_upstream


def _choose(client, **data):
    page = client.get("/login/national/first")
    assert page.status_code == 200
    return client.post("/login/national/first", data={"csrf_token": csrf_in(page.get_data(as_text=True)), **data})


def _token(client) -> str:
    return csrf_in(client.get("/logout").get_data(as_text=True))


def _counts():
    db.session.expire_all()
    return (db.session.scalar(db.select(db.func.count()).select_from(Account)),
            db.session.scalar(db.select(db.func.count()).select_from(UpstreamLink)))


def _failure_reasons():
    return [e.details.get("reason") for e in audit_events("upstream_login_failed")]


# -- the button ----------------------------------------------------------------------------------

def test_the_login_page_offers_the_national_platform_when_it_is_configured(client, upstream):
    page = client.get("/login").get_data(as_text=True)
    assert 'data-link="national"' in page and "/login/national" in page


@pytest.mark.parametrize("missing", ["NATIONAL_ISSUER", "NATIONAL_CLIENT_ID", "NATIONAL_CLIENT_SECRET"])
def test_the_login_page_hides_the_button_unless_issuer_id_and_secret_are_all_set(settings, missing):
    from idp import create_app

    settings[missing] = ""
    app = create_app(settings)
    client = app.test_client()
    assert 'data-link="national"' not in client.get("/login").get_data(as_text=True)
    assert client.get("/login/national").status_code == 404


# -- first sign-in ---------------------------------------------------------------------------------

def test_the_authorization_request_carries_pkce_state_and_nonce_bound_to_the_session(client, upstream):
    query = parse_qs(urlsplit(to_upstream(client)).query)
    pending = session_data(client.application, client)["national_pending"]
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["state"] == [pending["state"]] and query["nonce"] == [pending["nonce"]]
    assert "code_verifier" not in query and pending["code_verifier"] not in query["code_challenge"][0]


def test_a_first_sign_in_can_create_a_natural_person_account_from_the_upstream_claims(app, client, upstream):
    sub = upstream.person()
    assert national_sign_in(client, upstream).headers["Location"].endswith("/login/national/first")
    assert _counts() == (0, 0)  # nothing is made before the choice
    response = _choose(client, choice="create")
    assert response.status_code == 302
    account = db.session.execute(db.select(Account)).scalar_one()
    assert (account.account_type, account.name, account.phone, account.password_hash) == (
        "natural", "李四", "13900139000", None)
    assert account.login_name == "li_si"  # the upstream's preferred_username was free
    link = db.session.execute(db.select(UpstreamLink)).scalar_one()
    assert (link.issuer, link.subject, link.account_id, link.origin) == (upstream.issuer, sub, account.id, "create")
    signed_in = session_data(app, client)
    assert signed_in["account_id"] == account.id and signed_in["authentication"]["amr"] == ["fed"]
    assert Authentication.from_json(signed_in["authentication"]).acr == "urn:cn:most:idp:acr:federated"
    assert account.verification_status == "unverified"  # the upstream did not say verified
    assert [e.details["origin"] for e in audit_events("upstream_linked")] == ["create"]


def test_an_account_made_from_claims_that_lack_the_phone_asks_for_it_before_the_sign_in_ends(app, client, upstream):
    upstream.person(phone="")
    national_sign_in(client, upstream)
    response = _choose(client, choice="create")
    assert response.headers["Location"].endswith("/login/national/complete")
    assert "account_id" not in session_data(app, client)  # not signed in until completed
    page = client.get("/login/national/complete")
    bad = client.post("/login/national/complete", data={"csrf_token": csrf_in(page.get_data(as_text=True)),
                                                        "phone": "12345"})
    assert bad.status_code == 400
    done = client.post("/login/national/complete", data={"csrf_token": csrf_in(page.get_data(as_text=True)),
                                                         "phone": "13700137000"})
    assert done.status_code == 302
    account = db.session.execute(db.select(Account)).scalar_one()
    assert account.phone == "13700137000" and session_data(app, client)["authentication"]["amr"] == ["fed"]


def test_a_first_sign_in_links_an_existing_account_only_with_its_password(app, client, upstream):
    sub = upstream.person()
    mine = make_account("natural", "wang_wu", name="王五", phone="13600136000")
    national_sign_in(client, upstream)
    wrong = _choose(client, choice="link", account_type="natural", login_name="wang_wu", password="Wrong-Passw0rd")
    assert wrong.status_code == 401 and reason_of(wrong) == "invalid_credentials"
    assert _counts() == (1, 0)
    right = _choose(client, choice="link", account_type="natural", login_name="wang_wu", password=PASSWORD)
    assert right.status_code == 302
    link = db.session.execute(db.select(UpstreamLink)).scalar_one()
    assert (link.account_id, link.subject, link.origin) == (mine.id, sub, "link")
    assert session_data(app, client)["account_id"] == mine.id
    assert session_data(app, client)["authentication"]["amr"] == ["fed"]


def test_linking_keeps_the_lockout_of_the_password_check(app, client, upstream):
    upstream.person()
    make_account("natural", "wang_wu", name="王五")
    national_sign_in(client, upstream)
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        _choose(client, choice="link", account_type="natural", login_name="wang_wu", password="Wrong-Passw0rd")
    locked = _choose(client, choice="link", account_type="natural", login_name="wang_wu", password=PASSWORD)
    assert locked.status_code == 401 and reason_of(locked) == "account_locked"
    assert _counts() == (1, 0)


def test_an_account_is_never_linked_by_its_e_mail_or_phone(app, client, upstream):
    """The same e-mail and phone at the upstream and here: still the first-time choice."""
    upstream.person(email="same@example.cn", phone="13600136000")
    make_account("natural", "wang_wu", name="李四", email="same@example.cn", phone="13600136000")
    response = national_sign_in(client, upstream)
    assert response.headers["Location"].endswith("/login/national/first")
    assert _counts() == (1, 0)


def test_an_upstream_that_says_verified_makes_the_account_verified_auto_with_the_upstream_as_evidence(
        app, client, upstream):
    upstream.person()
    upstream.verify()
    national_sign_in(client, upstream)
    _choose(client, choice="create")
    account = db.session.execute(db.select(Account)).scalar_one()
    assert (account.verification_status, account.verification_method) == ("verified_auto", "upstream_national")
    from idp.oauth.claims import verified_claims

    claims = verified_claims(account)
    assert claims["claims"]["name"] == "李四"
    evidence = claims["verification"]["evidence"][0]
    assert evidence["type"] == "vouch" and evidence["attester"]["organization"] == upstream.issuer


# -- later sign-ins --------------------------------------------------------------------------------

def test_a_later_sign_in_goes_straight_through(app, client, upstream):
    upstream.person()
    national_sign_in(client, upstream)
    _choose(client, choice="create")
    client.post("/logout", data={"logout": "yes", "csrf_token": csrf_in(client.get("/logout").get_data(as_text=True))})
    assert "account_id" not in session_data(app, client)
    again = national_sign_in(client, upstream)
    assert again.status_code == 302 and not again.headers["Location"].endswith("/first")
    assert session_data(app, client)["authentication"]["amr"] == ["fed"]
    assert _counts() == (1, 1)


def test_a_later_sign_in_to_a_disabled_account_is_refused(app, client, upstream):
    upstream.person()
    national_sign_in(client, upstream)
    _choose(client, choice="create")
    account = db.session.execute(db.select(Account)).scalar_one()
    account.status = "disabled"
    db.session.commit()
    client.delete_cookie("idp_session")
    refused = national_sign_in(client, upstream)
    assert refused.status_code == 403 and reason_of(refused) == "account_disabled"
    assert "account_id" not in session_data(app, client)


def test_a_later_sign_in_to_a_locked_account_is_refused(app, client, upstream):
    """The login's lock (set by staff or by wrong passwords) holds for this way in too."""
    from idp.login import handlers

    upstream.person()
    national_sign_in(client, upstream)
    _choose(client, choice="create")
    account = db.session.execute(db.select(Account)).scalar_one()
    services().store.set(handlers._lock_key(account), str(services().clock.time() + 600).encode(), 600)
    client.delete_cookie("idp_session")
    refused = national_sign_in(client, upstream)
    assert refused.status_code == 403 and reason_of(refused) == "account_locked"
    assert "account_id" not in session_data(app, client)


# -- upstream errors: a clear page, the way back, nothing created or linked, audited ------------

def _assert_refused(response, reason, status=400):
    assert response.status_code == status, [e.details for e in audit_events("upstream_login_failed")]
    assert reason_of(response) == reason
    assert 'data-link="back-to-login"' in response.get_data(as_text=True)
    assert _counts() == (0, 0)
    assert reason in _failure_reasons()


def test_a_denied_consent_ends_on_a_clear_page(app, client, upstream):
    upstream.person()
    upstream.set_client(trusted=False)
    consent = sign_in_upstream(upstream, to_upstream(client))
    assert consent.status_code == 200  # the upstream's consent page
    page = consent.get_data(as_text=True)
    answer = upstream.browser.post(path_of(consent.request.url), data={
        "csrf_token": csrf_in(page), "consent": "deny"})
    location = answer.headers["Location"]
    assert "error=access_denied" in location
    _assert_refused(client.get(path_of(location)), "access_denied")


def test_a_wrong_state_ends_on_a_clear_page(app, client, upstream):
    upstream.person()
    answer = sign_in_upstream(upstream, to_upstream(client))
    forged = answer.headers["Location"].replace("state=", "state=x")
    _assert_refused(client.get(path_of(forged)), "state_mismatch")


def test_a_callback_in_another_browser_has_no_state_there(app, client, upstream):
    upstream.person()
    answer = sign_in_upstream(upstream, to_upstream(client))
    other = app.test_client()
    _assert_refused(other.get(path_of(answer.headers["Location"])), "state_mismatch")


def test_a_wrong_nonce_ends_on_a_clear_page(app, client, upstream):
    """The ID token answers another authorization request than the one this session sent."""
    upstream.person()
    authorize = to_upstream(client)
    key = "session:" + client.get_cookie("idp_session").value
    stored = json.loads(services().store.get(key))
    stored["national_pending"]["nonce"] = "a-nonce-of-another-request"
    services().store.set(key, json.dumps(stored).encode(), 600)
    answer = sign_in_upstream(upstream, authorize)
    _assert_refused(client.get(path_of(answer.headers["Location"])), "nonce_mismatch")


def test_a_bad_signature_ends_on_a_clear_page(app, client, upstream):
    """Keys that do not match the upstream's signature (a substituted or stale key set)."""
    from joserfc.jwk import RSAKey

    upstream.person()
    authorize = to_upstream(client)
    metadata = json.loads(services().store.get("national:metadata"))
    real = upstream.browser.get(path_of(metadata["jwks_uri"])).get_json()
    fake = [dict(RSAKey.generate_key(2048).as_dict(private=False), kid=key["kid"], alg=key.get("alg", "RS256"),
                 use="sig") for key in real["keys"] if key["kty"] == "RSA"]
    services().store.set("national:jwks", json.dumps({"keys": fake}).encode(), 600)
    answer = sign_in_upstream(upstream, authorize)
    _assert_refused(client.get(path_of(answer.headers["Location"])), "bad_signature")


def test_an_expired_id_token_ends_on_a_clear_page(app, client, upstream, upstream_clock):
    upstream.person()
    authorize = to_upstream(client)
    upstream_clock.advance(-2 * 3600 - 120)  # the upstream's tokens were issued two hours ago
    answer = sign_in_upstream(upstream, authorize)
    _assert_refused(client.get(path_of(answer.headers["Location"])), "token_expired")


def test_an_upstream_that_is_down_ends_on_a_clear_page(app, client, upstream):
    upstream.person()
    answer = sign_in_upstream(upstream, to_upstream(client))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    metadata = json.loads(services().store.get("national:metadata"))
    metadata["token_endpoint"] = f"http://127.0.0.1:{port}/token"  # nothing listens there
    services().store.set("national:metadata", json.dumps(metadata).encode(), 600)
    _assert_refused(client.get(path_of(answer.headers["Location"])), "upstream_unavailable", 502)


def test_an_upstream_that_is_down_at_the_start_ends_on_a_clear_page(app, client, upstream):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    app.config["NATIONAL_ISSUER"] = f"http://127.0.0.1:{port}"
    _assert_refused(client.get("/login/national"), "upstream_unavailable", 502)


def test_an_upstream_that_is_slow_ends_on_a_clear_page(app, client, upstream):
    """A token endpoint that accepts the connection and never answers: the deadline holds."""
    upstream.person()
    answer = sign_in_upstream(upstream, to_upstream(client))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    held = []
    threading.Thread(target=lambda: held.append(listener.accept()), daemon=True).start()
    metadata = json.loads(services().store.get("national:metadata"))
    metadata["token_endpoint"] = f"http://127.0.0.1:{listener.getsockname()[1]}/token"
    services().store.set("national:metadata", json.dumps(metadata).encode(), 600)
    app.config["NATIONAL_TIMEOUT"] = 0.5
    try:
        _assert_refused(client.get(path_of(answer.headers["Location"])), "upstream_unavailable", 502)
    finally:
        listener.close()


def test_the_same_authorization_response_cannot_be_used_twice(app, client, upstream):
    upstream.person()
    answer = sign_in_upstream(upstream, to_upstream(client))
    client.get(path_of(answer.headers["Location"]))
    _assert_refused(client.get(path_of(answer.headers["Location"])), "state_mismatch")


def test_the_first_time_page_without_a_validated_identity_refuses(app, client, upstream):
    response = client.post("/login/national/first", data={"choice": "create"})
    assert response.status_code == 400
    assert _counts() == (0, 0)


# -- the user centre -------------------------------------------------------------------------------

def test_the_user_centre_shows_the_link_and_removes_it_only_when_a_password_is_set(app, client, upstream):
    upstream.person()
    national_sign_in(client, upstream)
    _choose(client, choice="create")
    page = client.get("/center/national")
    assert page.status_code == 200 and 'data-table="upstream-links"' in page.get_data(as_text=True)
    assert reason_of(page) == "password_required"
    link = db.session.execute(db.select(UpstreamLink)).scalar_one()
    refused = client.post(f"/center/national/{link.id}/remove", data={"csrf_token": _token(client)})
    assert refused.status_code == 303 and _counts() == (1, 1)
    account = db.session.execute(db.select(Account)).scalar_one()
    account.password_hash = services().passwords.hash(PASSWORD)
    db.session.commit()
    removed = client.post(f"/center/national/{link.id}/remove", data={"csrf_token": _token(client)})
    assert removed.status_code == 303 and _counts() == (1, 0)
    assert [e.details["by"] for e in audit_events("upstream_unlinked")] == ["user"]


def test_a_link_of_another_account_cannot_be_removed(app, client, upstream):
    upstream.person()
    national_sign_in(client, upstream)
    _choose(client, choice="create")
    other = make_account("natural", "wang_wu")
    foreign = UpstreamLink(account_id=other.id, issuer="https://other.example", subject="x", origin="link")
    db.session.add(foreign)
    db.session.commit()
    assert client.post(f"/center/national/{foreign.id}/remove", data={"csrf_token": _token(client)}).status_code == 404


# -- single logout ---------------------------------------------------------------------------------

def test_signing_out_here_ends_the_upstream_session_by_rp_initiated_logout(app, client, upstream):
    upstream.person()
    national_sign_in(client, upstream)
    _choose(client, choice="create")
    out = client.post("/logout", data={"logout": "yes", "csrf_token": csrf_in(client.get("/logout").get_data(as_text=True))})
    location = out.headers["Location"]
    assert location.startswith(upstream.issuer)
    query = parse_qs(urlsplit(location).query)
    assert query["post_logout_redirect_uri"] == [app.config["ISSUER"] + "/login"] and query["id_token_hint"]
    ended = upstream.browser.get(path_of(location))  # the platform ends its session at once (the hint is ours)
    assert ended.status_code == 302 and ended.headers["Location"] == app.config["ISSUER"] + "/login"
    assert upstream.browser.get("/center/profile").status_code == 302  # signed out there too


def test_an_upstream_back_channel_logout_ends_the_sessions_here(app, client, upstream):
    upstream.person()
    national_sign_in(client, upstream)
    _choose(client, choice="create")
    sid = session_data(app, client)["sid"]
    # the person signs out at the national platform, which tells its clients (back-channel)
    page = upstream.browser.get("/logout").get_data(as_text=True)
    upstream.browser.post("/logout", data={"logout": "yes", "csrf_token": csrf_in(page)})
    db.session.expire_all()
    row = db.session.execute(db.select(SsoSession).filter_by(sid=sid)).scalar_one()
    assert row.ended_at is not None
    assert session_data(app, client) == {}
    assert client.get("/center/profile").status_code == 302
    assert audit_events("upstream_logged_out")


def test_a_forged_logout_token_is_refused(app, client, upstream):
    response = client.post("/login/national/backchannel-logout", data={"logout_token": "e30.e30.e30"})
    assert response.status_code == 400
    assert _failure_reasons() == ["invalid_id_token"]


def test_a_logout_token_signed_by_another_key_is_refused(app, client, upstream):
    """A token that looks right (issuer, audience, event) but is not signed by the platform."""
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import RSAKey

    metadata_keys = upstream.browser.get("/jwks.json").get_json()["keys"]
    key = RSAKey.generate_key(2048, parameters={"kid": metadata_keys[0]["kid"]})
    now = int(services().clock.time())
    forged = jose_jwt.encode({"alg": "RS256", "kid": metadata_keys[0]["kid"]}, {
        "iss": upstream.issuer, "aud": upstream.client_id, "iat": now, "jti": "x", "sub": "anyone",
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}, key)
    assert client.post("/login/national/backchannel-logout", data={"logout_token": forged}).status_code == 400
    assert _failure_reasons() == ["bad_signature"]


def test_discovery_names_the_federated_acr_when_the_platform_is_configured(client, upstream):
    document = client.get("/.well-known/openid-configuration").get_json()
    assert "urn:cn:most:idp:acr:federated" in document["acr_values_supported"]


def test_a_business_systems_request_is_answered_after_a_national_sign_in(app, client, upstream):
    """/authorize at this provider → its login page → the national platform → back: the code
    goes to the business system, with amr fed in the sign-in it names."""
    from idp.clients import ClientSpec, create
    from tests.oidc.conftest import pkce_pair

    upstream.person()
    national_sign_in(client, upstream)
    _choose(client, choice="create")
    client.delete_cookie("idp_session")  # a new browser session: signed out here
    system, _ = create(ClientSpec(name="高企认定", redirect_uris=["https://gaoqi.example/cb"], trusted=True,
                                  scopes=["openid", "profile"]))
    _, challenge = pkce_pair()
    to_login = client.get("/authorize", query_string={
        "response_type": "code", "client_id": system.client_id, "redirect_uri": "https://gaoqi.example/cb",
        "scope": "openid", "state": "s1", "nonce": "n1", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    assert "/login" in to_login.headers["Location"]
    client.get(path_of(to_login.headers["Location"]))  # the login page, holding the stored request
    back = national_sign_in(client, upstream)
    location = back.headers["Location"]
    if not location.startswith("https://gaoqi.example/cb"):  # sent on to the stored request's URL
        location = client.get(path_of(location)).headers["Location"]
    assert location.startswith("https://gaoqi.example/cb?code=") and "state=s1" in location
