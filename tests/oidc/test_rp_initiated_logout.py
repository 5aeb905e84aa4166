"""OpenID Connect RP-Initiated Logout 1.0: end_session_endpoint with id_token_hint,
post_logout_redirect_uri and state; confirmation without a hint; forged hints refused."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from idp.extensions import db
from idp.models.oauth import SsoSession
from tests.oidc.conftest import (b64json, csrf_from, decode_unverified, form_action, header_of, html, location,
                                 query_of, reason_of)

POST_LOGOUT = "https://rp.example/signed-out"


@pytest.fixture
def signed_in(rp, make_client, person):
    client_id, secret = make_client(trusted=True, post_logout_redirect_uris=[POST_LOGOUT])
    tokens = rp.sign_in(client_id, secret)
    return client_id, secret, tokens


def end_session_url(**params) -> str:
    return "/end-session?" + urlencode({k: v for k, v in params.items() if v is not None})


def assert_signed_out(rp) -> None:
    response = rp.get("/center/profile")
    assert response.status_code == 302 and urlsplit(location(response)).path == "/login"
    assert "account_id" not in rp.session()


def assert_signed_in(rp) -> None:
    assert rp.get("/center/profile").status_code == 200


def test_logout_with_id_token_hint_ends_the_session_and_redirects_with_state(rp, signed_in):
    client_id, secret, tokens = signed_in
    response = rp.get(end_session_url(id_token_hint=tokens["id_token"], post_logout_redirect_uri=POST_LOGOUT,
                                      state="lo-state"))
    assert response.status_code == 302
    target = location(response)
    assert target.startswith(POST_LOGOUT + "?")
    assert query_of(target) == {"state": "lo-state"}
    assert_signed_out(rp)
    row = db.session.execute(db.select(SsoSession).filter_by(sid=tokens["claims"]["sid"])).scalar_one()
    assert row.ended_at is not None


def test_logout_with_id_token_hint_and_client_id_redirects(rp, signed_in):
    """The same with client_id, which resolves the client whatever the form of aud."""
    client_id, secret, tokens = signed_in
    response = rp.get(end_session_url(id_token_hint=tokens["id_token"], client_id=client_id,
                                      post_logout_redirect_uri=POST_LOGOUT, state="s2"))
    assert response.status_code == 302 and query_of(location(response))["state"] == "s2"
    assert location(response).startswith(POST_LOGOUT)
    assert_signed_out(rp)
    row = db.session.execute(db.select(SsoSession).filter_by(sid=tokens["claims"]["sid"])).scalar_one()
    assert row.ended_at is not None


def test_logout_by_post_with_id_token_hint_ends_the_session_and_redirects(rp, signed_in):
    client_id, _, tokens = signed_in
    response = rp.browser.post("/end-session", data={
        "id_token_hint": tokens["id_token"], "client_id": client_id, "post_logout_redirect_uri": POST_LOGOUT,
        "state": "by-post"})
    assert response.status_code == 302 and location(response).startswith(POST_LOGOUT)
    assert query_of(location(response)) == {"state": "by-post"}
    assert_signed_out(rp)


def test_logout_ends_the_sessions_refresh_tokens(rp, signed_in):
    client_id, secret, tokens = signed_in
    rp.get(end_session_url(id_token_hint=tokens["id_token"], client_id=client_id,
                           post_logout_redirect_uri=POST_LOGOUT))
    assert rp.refresh(client_id, secret, tokens["refresh_token"]).status_code == 400
    assert rp.userinfo(tokens["access_token"]).status_code == 401


def test_logout_with_id_token_hint_and_no_redirect_uri_shows_the_signed_out_page(rp, signed_in):
    _, _, tokens = signed_in
    response = rp.get(end_session_url(id_token_hint=tokens["id_token"]))
    assert response.status_code == 200 and reason_of(response) == "logged_out"
    assert_signed_out(rp)


def test_an_unregistered_post_logout_redirect_uri_is_never_redirected_to(rp, signed_in):
    client_id, _, tokens = signed_in
    for uri in ("https://evil.example/out", POST_LOGOUT + "/", POST_LOGOUT.upper()):
        rp_response = rp.get(end_session_url(id_token_hint=tokens["id_token"], client_id=client_id,
                                             post_logout_redirect_uri=uri, state="x"))
        assert not location(rp_response).startswith(uri), uri
        assert "evil.example" not in location(rp_response)


def test_another_clients_post_logout_redirect_uri_is_not_used(rp, signed_in, make_client):
    _, _, tokens = signed_in
    make_client(trusted=True, post_logout_redirect_uris=["https://other.example/out"])
    response = rp.get(end_session_url(id_token_hint=tokens["id_token"],
                                      post_logout_redirect_uri="https://other.example/out"))
    assert "other.example" not in location(response)


def test_logout_without_id_token_hint_asks_for_confirmation(rp, signed_in):
    response = rp.get(end_session_url(state="s"))
    assert response.status_code == 200
    page = html(response)
    assert 'name="logout"' in page and 'value="yes"' in page
    assert_signed_in(rp)
    action = form_action(page, 'name="logout"')
    confirmed = rp.browser.post(action, data={"csrf_token": csrf_from(page), "logout": "yes"})
    assert confirmed.status_code in (200, 302)
    assert_signed_out(rp)


def test_logout_confirmation_with_no_keeps_the_session(rp, signed_in):
    page = html(rp.get(end_session_url()))
    rp.browser.post(form_action(page, 'name="logout"'), data={"csrf_token": csrf_from(page), "logout": "no"})
    assert_signed_in(rp)


def test_logout_confirmation_needs_the_csrf_token(rp, signed_in):
    page = html(rp.get(end_session_url()))
    response = rp.browser.post(form_action(page, 'name="logout"'), data={"logout": "yes"})
    assert response.status_code == 400
    assert_signed_in(rp)


def test_logout_without_hint_does_not_redirect_to_the_post_logout_uri_unconfirmed(rp, signed_in):
    client_id, _, _ = signed_in
    response = rp.get(end_session_url(client_id=client_id, post_logout_redirect_uri=POST_LOGOUT))
    assert response.status_code == 200 and "Location" not in response.headers
    assert_signed_in(rp)


def test_logout_with_an_expired_id_token_hint_is_still_accepted(rp, signed_in, clock, app):
    """RP-Initiated Logout §2: the OP SHOULD accept an expired ID token of a recent session."""
    client_id, _, tokens = signed_in
    clock.advance(app.config["ID_TOKEN_TTL"] + 60)
    response = rp.get(end_session_url(id_token_hint=tokens["id_token"], client_id=client_id,
                                      post_logout_redirect_uri=POST_LOGOUT, state="late"))
    assert response.status_code == 302 and location(response).startswith(POST_LOGOUT)


def test_logout_when_already_signed_out_still_redirects_with_a_valid_hint(rp, signed_in):
    client_id, _, tokens = signed_in
    url = end_session_url(id_token_hint=tokens["id_token"], client_id=client_id,
                          post_logout_redirect_uri=POST_LOGOUT, state="again")
    rp.get(url)
    response = rp.get(url)
    assert response.status_code == 302 and query_of(location(response)) == {"state": "again"}


# --- forged hints ----------------------------------------------------------------------------


def forged_with_another_key(claims: dict, kid: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def test_an_id_token_hint_signed_by_another_key_gets_an_error_page(rp, signed_in):
    client_id, _, tokens = signed_in
    claims = decode_unverified(tokens["id_token"])
    forged = forged_with_another_key(claims, header_of(tokens["id_token"])["kid"])
    response = rp.get(end_session_url(id_token_hint=forged, post_logout_redirect_uri=POST_LOGOUT, state="f"))
    assert response.status_code == 400 and "Location" not in response.headers
    assert_signed_in(rp)


def test_an_unsigned_id_token_hint_gets_an_error_page(rp, signed_in):
    client_id, _, tokens = signed_in
    claims = decode_unverified(tokens["id_token"])
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "none", "kid": header_of(tokens["id_token"])["kid"]}):
        unsigned = b64json(header) + "." + b64json(claims) + "."
        response = rp.get(end_session_url(id_token_hint=unsigned, post_logout_redirect_uri=POST_LOGOUT))
        assert response.status_code == 400 and "Location" not in response.headers
    assert_signed_in(rp)


def test_a_tampered_id_token_hint_gets_an_error_page(rp, signed_in):
    _, _, tokens = signed_in
    head, _, signature = tokens["id_token"].split(".")
    claims = dict(decode_unverified(tokens["id_token"]), sub="someone-else")
    response = rp.get(end_session_url(id_token_hint=f"{head}.{b64json(claims)}.{signature}"))
    assert response.status_code == 400
    assert_signed_in(rp)


def test_an_id_token_hint_for_another_client_id_gets_an_error_page(rp, signed_in, make_client):
    _, _, tokens = signed_in
    other, _ = make_client()
    response = rp.get(end_session_url(id_token_hint=tokens["id_token"], client_id=other))
    assert response.status_code == 400
    assert_signed_in(rp)


def test_garbage_id_token_hint_gets_an_error_page(rp, signed_in):
    response = rp.get(end_session_url(id_token_hint="garbage"))
    assert response.status_code == 400 and "Location" not in response.headers
    assert_signed_in(rp)
