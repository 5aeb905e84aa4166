"""The token endpoint (RFC 6749 §3.2, §4.1.3, §5, §6; RFC 7636; RFC 9068; OAuth 2.0 Security
BCP §4.14): client authentication, code redemption, PKCE, refresh-token rotation, client
credentials, and the JWT access tokens."""

from __future__ import annotations

import threading

import pytest

from idp.extensions import db
from idp.models.audit import AuditEvent
from idp.models.oauth import RefreshToken
from tests.oidc.conftest import REDIRECT_URI, basic_auth, decode_unverified, header_of, location, pkce_pair, query_of


@pytest.fixture
def confidential(make_client):
    return make_client(trusted=True)


def error_of(response) -> str:
    return (response.get_json() or {}).get("error", "")


# --- client authentication -------------------------------------------------------------------


def test_client_secret_basic_authenticates(rp, confidential, person):
    client_id, secret = confidential
    flow = rp.authorize(client_id)
    response = rp.redeem(client_id, secret, flow.code, auth="basic")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers.get("Pragma") == "no-cache"
    assert response.mimetype == "application/json"


def test_client_secret_post_authenticates_a_client_registered_for_it(rp, make_client, person):
    client_id, secret = make_client(trusted=True, token_endpoint_auth_method="client_secret_post")
    tokens = rp.sign_in(client_id, secret, auth="post")
    assert tokens["claims"]["aud"] == [client_id] or tokens["claims"]["aud"] == client_id


def test_a_client_must_use_its_registered_authentication_method(rp, make_client, person):
    client_id, secret = make_client(trusted=True, token_endpoint_auth_method="client_secret_post")
    flow = rp.authorize(client_id)
    response = rp.redeem(client_id, secret, flow.code, auth="basic")
    assert response.status_code == 401 and error_of(response) == "invalid_client"


def test_a_wrong_secret_is_invalid_client(rp, confidential, person):
    client_id, _ = confidential
    flow = rp.authorize(client_id)
    response = rp.redeem(client_id, "wrong-secret", flow.code)
    assert response.status_code == 401 and error_of(response) == "invalid_client"
    assert response.headers.get("WWW-Authenticate", "").lower().startswith("basic")


def test_a_wrong_secret_by_post_is_invalid_client(rp, make_client, person):
    client_id, secret = make_client(trusted=True, token_endpoint_auth_method="client_secret_post")
    flow = rp.authorize(client_id)
    response = rp.redeem(client_id, "wrong", flow.code, auth="post")
    assert response.status_code in (400, 401) and error_of(response) == "invalid_client"


def test_an_unknown_client_is_invalid_client(rp, confidential, person):
    client_id, secret = confidential
    flow = rp.authorize(client_id)
    response = rp.redeem("no-such-client", secret, flow.code)
    assert response.status_code == 401 and error_of(response) == "invalid_client"


def test_no_client_authentication_is_invalid_client(rp, confidential, person):
    client_id, _ = confidential
    flow = rp.authorize(client_id)
    response = rp.redeem(client_id, None, flow.code, auth="none")
    assert response.status_code in (400, 401) and error_of(response) == "invalid_client"


def test_a_failed_client_authentication_does_not_spend_the_code(rp, confidential, person):
    client_id, secret = confidential
    flow = rp.authorize(client_id)
    rp.redeem(client_id, "wrong", flow.code)
    assert rp.redeem(client_id, secret, flow.code).status_code == 200


# --- the code --------------------------------------------------------------------------------


def test_a_reused_code_is_refused_and_revokes_what_it_issued(rp, confidential, person):
    client_id, secret = confidential
    flow = rp.authorize(client_id)
    first = rp.redeem(client_id, secret, flow.code)
    assert first.status_code == 200
    tokens = first.get_json()
    assert rp.userinfo(tokens["access_token"]).status_code == 200
    again = rp.redeem(client_id, secret, flow.code)
    assert again.status_code == 400 and error_of(again) == "invalid_grant"
    assert rp.userinfo(tokens["access_token"]).status_code == 401
    refreshed = rp.refresh(client_id, secret, tokens["refresh_token"])
    assert refreshed.status_code == 400 and error_of(refreshed) == "invalid_grant"


def test_a_code_reused_after_30_seconds_is_refused_and_revokes_what_it_issued(rp, confidential, person, clock):
    client_id, secret = confidential
    flow = rp.authorize(client_id)
    tokens = rp.redeem(client_id, secret, flow.code).get_json()
    clock.advance(30)
    again = rp.redeem(client_id, secret, flow.code)
    assert again.status_code == 400 and error_of(again) == "invalid_grant"
    assert rp.userinfo(tokens["access_token"]).status_code == 401


def test_a_reused_code_also_revokes_tokens_refreshed_from_it(rp, confidential, person):
    client_id, secret = confidential
    flow = rp.authorize(client_id)
    tokens = rp.redeem(client_id, secret, flow.code).get_json()
    newer = rp.refresh(client_id, secret, tokens["refresh_token"]).get_json()
    assert rp.redeem(client_id, secret, flow.code).status_code == 400
    assert rp.userinfo(newer["access_token"]).status_code == 401
    assert error_of(rp.refresh(client_id, secret, newer["refresh_token"])) == "invalid_grant"


def test_an_expired_code_is_invalid_grant(rp, confidential, person, clock, app):
    client_id, secret = confidential
    flow = rp.authorize(client_id)
    clock.advance(app.config["CODE_TTL"] + 1)
    response = rp.redeem(client_id, secret, flow.code)
    assert response.status_code == 400 and error_of(response) == "invalid_grant"


def test_a_code_just_within_its_lifetime_is_accepted(rp, confidential, person, clock, app):
    client_id, secret = confidential
    flow = rp.authorize(client_id)
    clock.advance(app.config["CODE_TTL"] - 1)
    assert rp.redeem(client_id, secret, flow.code).status_code == 200


def test_a_code_is_bound_to_its_client(rp, confidential, make_client, person):
    client_id, secret = confidential
    other, other_secret = make_client(trusted=True)
    flow = rp.authorize(client_id)
    response = rp.redeem(other, other_secret, flow.code)
    assert response.status_code == 400 and error_of(response) == "invalid_grant"


def test_a_code_is_bound_to_its_redirect_uri(rp, make_client, person):
    other_uri = "https://rp.example/other"
    client_id, secret = make_client(trusted=True, redirect_uris=[REDIRECT_URI, other_uri])
    flow = rp.authorize(client_id)
    response = rp.redeem(client_id, secret, flow.code, redirect_uri=other_uri)
    assert response.status_code == 400 and error_of(response) == "invalid_grant"


def test_a_code_needs_the_redirect_uri_it_was_issued_for(rp, confidential, person):
    client_id, secret = confidential
    flow = rp.authorize(client_id)
    response = rp.redeem(client_id, secret, flow.code, redirect_uri=None)
    assert response.status_code == 400 and error_of(response) in ("invalid_grant", "invalid_request")


@pytest.mark.parametrize("code", ["", "garbage", "x" * 5000])
def test_an_unknown_code_is_invalid_grant(rp, confidential, code):
    client_id, secret = confidential
    response = rp.redeem(client_id, secret, code)
    assert response.status_code == 400 and error_of(response) in ("invalid_grant", "invalid_request")


# --- PKCE ------------------------------------------------------------------------------------


@pytest.fixture
def public(make_client):
    return make_client(trusted=True, token_endpoint_auth_method="none")


def test_a_public_client_with_s256_pkce_gets_tokens_without_a_secret(rp, public, person):
    client_id, secret = public
    assert secret is None
    tokens = rp.sign_in(client_id, None, auth="none", pkce=True)
    assert tokens["access_token"] and tokens["claims"]["sub"] == person.sub


def test_a_public_client_without_a_code_challenge_is_refused_at_the_authorization_endpoint(rp, public, person):
    client_id, _ = public
    response = rp.get(rp.authorize_url(client_id, state="pk"))
    assert response.status_code == 302
    params = query_of(location(response))
    assert params["error"] == "invalid_request" and params["state"] == "pk"


def test_code_challenge_method_plain_is_refused(rp, public, person):
    client_id, _ = public
    verifier, _ = pkce_pair()
    response = rp.get(rp.authorize_url(client_id, code_challenge=verifier, code_challenge_method="plain"))
    assert response.status_code == 302
    assert query_of(location(response))["error"] == "invalid_request"


def test_a_code_challenge_without_a_method_is_refused(rp, public, person):
    """RFC 7636 §4.3: the method defaults to plain, which this provider does not support."""
    client_id, _ = public
    _, challenge = pkce_pair()
    response = rp.get(rp.authorize_url(client_id, code_challenge=challenge))
    assert response.status_code == 302
    assert query_of(location(response))["error"] == "invalid_request"


def test_a_wrong_code_verifier_is_invalid_grant(rp, public, person):
    client_id, _ = public
    flow = rp.authorize(client_id, pkce=True)
    wrong, _ = pkce_pair()
    response = rp.redeem(client_id, None, flow.code, code_verifier=wrong, auth="none")
    assert response.status_code == 400 and error_of(response) == "invalid_grant"


def test_a_missing_code_verifier_is_refused(rp, public, person):
    client_id, _ = public
    flow = rp.authorize(client_id, pkce=True)
    response = rp.redeem(client_id, None, flow.code, auth="none")
    assert response.status_code == 400 and error_of(response) in ("invalid_request", "invalid_grant")


def test_a_confidential_client_that_sent_a_challenge_must_send_the_verifier(rp, confidential, person):
    client_id, secret = confidential
    flow = rp.authorize(client_id, pkce=True)
    response = rp.redeem(client_id, secret, flow.code)
    assert response.status_code == 400 and error_of(response) in ("invalid_request", "invalid_grant")
    flow = rp.authorize(client_id, pkce=True)
    assert rp.redeem(client_id, secret, flow.code, code_verifier=flow.verifier).status_code == 200


def test_a_code_verifier_for_a_code_issued_without_a_challenge_is_refused(rp, confidential, person):
    """OAuth 2.0 Security BCP §4.8.2: PKCE downgrade — a verifier is accepted only if a
    challenge was sent with the authorization request."""
    client_id, secret = confidential
    flow = rp.authorize(client_id)
    verifier, _ = pkce_pair()
    response = rp.redeem(client_id, secret, flow.code, code_verifier=verifier)
    assert response.status_code == 400 and error_of(response) in ("invalid_request", "invalid_grant")


def test_a_public_client_cannot_pretend_to_have_a_secret(rp, public, person):
    client_id, _ = public
    flow = rp.authorize(client_id, pkce=True)
    response = rp.redeem(client_id, "made-up", flow.code, code_verifier=flow.verifier, auth="basic")
    assert response.status_code == 401 and error_of(response) == "invalid_client"


# --- refresh tokens --------------------------------------------------------------------------


def test_each_refresh_returns_a_new_refresh_token(rp, confidential, person):
    client_id, secret = confidential
    tokens = rp.sign_in(client_id, secret)
    seen = {tokens["refresh_token"]}
    current = tokens["refresh_token"]
    for _ in range(3):
        response = rp.refresh(client_id, secret, current)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["refresh_token"] not in seen
        assert rp.userinfo(body["access_token"]).status_code == 200
        seen.add(body["refresh_token"])
        current = body["refresh_token"]


def test_a_replayed_refresh_token_revokes_the_whole_family(rp, confidential, person):
    client_id, secret = confidential
    tokens = rp.sign_in(client_id, secret)
    newest = rp.refresh(client_id, secret, tokens["refresh_token"]).get_json()
    assert rp.userinfo(newest["access_token"]).status_code == 200
    replay = rp.refresh(client_id, secret, tokens["refresh_token"])
    assert replay.status_code == 400 and error_of(replay) == "invalid_grant"
    assert rp.userinfo(newest["access_token"]).status_code == 401
    assert rp.userinfo(tokens["access_token"]).status_code == 401
    after = rp.refresh(client_id, secret, newest["refresh_token"])
    assert after.status_code == 400 and error_of(after) == "invalid_grant"
    with rp.app.app_context():
        revoked = db.session.execute(db.select(AuditEvent).filter_by(event="token_revoked")
                                     .order_by(AuditEvent.id.desc())).scalars().first()
    assert revoked.subject == client_id and revoked.client_address == "127.0.0.1"


def test_a_refresh_token_is_bound_to_its_client(rp, confidential, make_client, person):
    client_id, secret = confidential
    other, other_secret = make_client(trusted=True)
    tokens = rp.sign_in(client_id, secret)
    response = rp.refresh(other, other_secret, tokens["refresh_token"])
    assert response.status_code == 400 and error_of(response) == "invalid_grant"
    # Nothing was spent or revoked: the token still works for its own client.
    assert rp.refresh(client_id, secret, tokens["refresh_token"]).status_code == 200


def test_an_expired_refresh_token_is_invalid_grant(rp, confidential, person, clock, app):
    client_id, secret = confidential
    tokens = rp.sign_in(client_id, secret)
    clock.advance(app.config["REFRESH_TOKEN_TTL"] + 1)
    response = rp.refresh(client_id, secret, tokens["refresh_token"])
    assert response.status_code == 400 and error_of(response) == "invalid_grant"


def test_a_refresh_cannot_widen_the_scope(rp, confidential, person):
    client_id, secret = confidential
    tokens = rp.sign_in(client_id, secret, scope="openid")
    response = rp.refresh(client_id, secret, tokens["refresh_token"], scope="openid profile")
    assert response.status_code == 400 and error_of(response) == "invalid_scope"
    # The refused request rotated nothing: the same token still refreshes, once.
    assert rp.refresh(client_id, secret, tokens["refresh_token"], scope="openid").status_code == 200
    assert error_of(rp.refresh(client_id, secret, tokens["refresh_token"])) == "invalid_grant"


def post_token_at_once(app, client_id, secret, data: dict, times: int = 4) -> list:
    """The same token request from ``times`` threads, released at the same moment."""
    barrier = threading.Barrier(times)
    responses: list = [None] * times

    def attempt(index: int) -> None:
        with app.app_context():
            browser = app.test_client()
            barrier.wait(timeout=10)
            responses[index] = browser.post("/token", data=data, headers=basic_auth(client_id, secret))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return responses


def test_of_simultaneous_uses_of_a_refresh_token_one_wins_and_the_family_ends(app, rp, confidential, person):
    client_id, secret = confidential
    tokens = rp.sign_in(client_id, secret)
    responses = post_token_at_once(app, client_id, secret,
                                   {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert sorted(r.status_code for r in responses) == [200, 400, 400, 400]
    assert {error_of(r) for r in responses if r.status_code == 400} == {"invalid_grant"}
    winner = next(r for r in responses if r.status_code == 200).get_json()
    # The losers presented a rotated token: the family, the winner's new tokens included, ends.
    assert rp.userinfo(winner["access_token"]).status_code == 401
    assert error_of(rp.refresh(client_id, secret, winner["refresh_token"])) == "invalid_grant"


def test_of_simultaneous_redemptions_of_a_code_one_wins_and_its_tokens_are_revoked(app, rp, confidential, person):
    client_id, secret = confidential
    flow = rp.authorize(client_id)
    responses = post_token_at_once(app, client_id, secret, {"grant_type": "authorization_code", "code": flow.code,
                                                             "redirect_uri": REDIRECT_URI})
    assert sorted(r.status_code for r in responses) == [200, 400, 400, 400]
    winner = next(r for r in responses if r.status_code == 200).get_json()
    assert rp.userinfo(winner["access_token"]).status_code == 401
    assert error_of(rp.refresh(client_id, secret, winner["refresh_token"])) == "invalid_grant"


def test_refreshed_access_tokens_keep_the_subject_and_session(rp, confidential, person, verify_jwt):
    client_id, secret = confidential
    tokens = rp.sign_in(client_id, secret, scope="openid profile")
    body = rp.refresh(client_id, secret, tokens["refresh_token"]).get_json()
    claims = verify_jwt(body["access_token"], client_id, typ="at+jwt")
    assert claims["sub"] == person.sub and claims["sid"] == tokens["claims"]["sid"]
    assert claims["scope"] == "openid profile"


def test_a_client_without_the_refresh_grant_gets_no_refresh_token(rp, make_client, person):
    client_id, secret = make_client(trusted=True, grant_types=["authorization_code"])
    tokens = rp.sign_in(client_id, secret)
    assert "refresh_token" not in tokens
    assert db.session.execute(db.select(RefreshToken)).first() is None


# --- client credentials ----------------------------------------------------------------------


def test_client_credentials_gives_a_jwt_access_token_for_the_client(rp, make_client, verify_jwt):
    client_id, secret = make_client(grant_types=["client_credentials"], redirect_uris=[])
    response = rp.token(client_id, secret, grant_type="client_credentials")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert "refresh_token" not in body and "id_token" not in body
    claims = verify_jwt(body["access_token"], client_id, typ="at+jwt")
    assert claims["sub"] == client_id and claims["client_id"] == client_id


def test_client_credentials_needs_the_grant_type_registered(rp, confidential):
    client_id, secret = confidential
    response = rp.token(client_id, secret, grant_type="client_credentials")
    assert response.status_code == 400 and error_of(response) == "unauthorized_client"


def test_client_credentials_needs_a_correct_secret(rp, make_client):
    client_id, _ = make_client(grant_types=["client_credentials"], redirect_uris=[])
    response = rp.token(client_id, "wrong", grant_type="client_credentials")
    assert response.status_code == 401 and error_of(response) == "invalid_client"


@pytest.mark.parametrize("grant_type", ["password", "implicit", "urn:ietf:params:oauth:grant-type:device_code", "x"])
def test_an_unsupported_grant_type_is_refused(rp, confidential, grant_type):
    client_id, secret = confidential
    response = rp.token(client_id, secret, grant_type=grant_type, username="zhang_san", password="x")
    assert response.status_code == 400 and error_of(response) == "unsupported_grant_type"


def test_a_missing_grant_type_is_refused(rp, confidential):
    client_id, secret = confidential
    response = rp.token(client_id, secret)
    assert response.status_code == 400 and error_of(response) in ("invalid_request", "unsupported_grant_type")


def test_the_token_endpoint_refuses_get(rp):
    assert rp.browser.get("/token").status_code == 405


# --- access tokens (RFC 9068) ----------------------------------------------------------------


def test_access_tokens_are_jwts_with_the_rfc_9068_claims(rp, confidential, person, verify_jwt, app):
    client_id, secret = confidential
    tokens = rp.sign_in(client_id, secret, scope="openid profile")
    assert header_of(tokens["access_token"])["typ"] == "at+jwt"
    claims = verify_jwt(tokens["access_token"], client_id, typ="at+jwt",
                        require=("iss", "sub", "aud", "exp", "iat", "jti", "client_id"))
    assert claims["sub"] == person.sub and claims["client_id"] == client_id
    assert claims["scope"] == "openid profile"
    assert claims["exp"] - claims["iat"] == app.config["ACCESS_TOKEN_TTL"] == tokens["expires_in"]


def test_two_access_tokens_in_the_same_second_differ(rp, confidential, person):
    client_id, secret = confidential
    first = rp.sign_in(client_id, secret)
    second = rp.sign_in(client_id, secret)  # the frozen clock: the very same second
    a, b = decode_unverified(first["access_token"]), decode_unverified(second["access_token"])
    assert a["iat"] == b["iat"] and a["sub"] == b["sub"] and a["scope"] == b["scope"]
    assert first["access_token"] != second["access_token"]
    assert a["jti"] != b["jti"]
    refreshed = [rp.refresh(client_id, secret, t["refresh_token"]).get_json()["access_token"]
                 for t in (first, second)]
    assert len({decode_unverified(t)["jti"] for t in refreshed + [first["access_token"]]}) == 3


def test_client_credentials_tokens_in_the_same_second_differ(rp, make_client):
    client_id, secret = make_client(grant_types=["client_credentials"], redirect_uris=[])
    tokens = [rp.token(client_id, secret, grant_type="client_credentials").get_json()["access_token"]
              for _ in range(2)]
    assert tokens[0] != tokens[1]
    assert decode_unverified(tokens[0])["jti"] != decode_unverified(tokens[1])["jti"]
