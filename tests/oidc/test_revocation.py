"""Token revocation (RFC 7009): access and refresh tokens, only by the client they were
issued to, client authentication required, unknown tokens answered with 200."""

from __future__ import annotations

import pytest

from tests.oidc.conftest import basic_auth

ACCESS_TOKEN_BUG = ("BUG: idp/oauth/server.py Revocation.query_token() returns an access token's claims as a dict; "
                    "Authlib's RevocationEndpoint.authenticate_token() calls token.check_client(client) on it → "
                    "AttributeError, 500, and the access token is not revoked")


@pytest.fixture
def issued(rp, make_client, person):
    client_id, secret = make_client(trusted=True)
    return client_id, secret, rp.sign_in(client_id, secret)


def revoke(rp, client_id, secret, token, **extra):
    return rp.browser.post("/revoke", data={"token": token, **extra}, headers=basic_auth(client_id, secret))


def test_revoking_an_access_token_ends_it_at_userinfo(rp, issued):
    client_id, secret, tokens = issued
    response = revoke(rp, client_id, secret, tokens["access_token"])
    assert response.status_code == 200
    assert rp.userinfo(tokens["access_token"]).status_code == 401


def test_revoking_an_access_token_with_the_type_hint(rp, issued):
    client_id, secret, tokens = issued
    response = revoke(rp, client_id, secret, tokens["access_token"], token_type_hint="access_token")
    assert response.status_code == 200
    assert rp.userinfo(tokens["access_token"]).status_code == 401


def test_revoking_a_refresh_token_ends_it_and_its_access_token(rp, issued):
    client_id, secret, tokens = issued
    response = revoke(rp, client_id, secret, tokens["refresh_token"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    refreshed = rp.refresh(client_id, secret, tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"
    assert rp.userinfo(tokens["access_token"]).status_code == 401


def test_revoking_a_refresh_token_with_the_type_hint(rp, issued):
    client_id, secret, tokens = issued
    assert revoke(rp, client_id, secret, tokens["refresh_token"], token_type_hint="refresh_token").status_code == 200
    assert rp.refresh(client_id, secret, tokens["refresh_token"]).status_code == 400


def test_revoking_a_rotated_refresh_tokens_successor_ends_the_family(rp, issued):
    client_id, secret, tokens = issued
    newer = rp.refresh(client_id, secret, tokens["refresh_token"]).get_json()
    assert revoke(rp, client_id, secret, newer["refresh_token"]).status_code == 200
    assert rp.userinfo(newer["access_token"]).status_code == 401
    assert rp.refresh(client_id, secret, newer["refresh_token"]).status_code == 400


@pytest.mark.parametrize("token", ["unknown-token", "a.b.c", "x" * 5000])
def test_revoking_an_unknown_token_answers_200(rp, issued, token):
    client_id, secret, _ = issued
    assert revoke(rp, client_id, secret, token).status_code == 200


def test_revoking_twice_answers_200(rp, issued):
    client_id, secret, tokens = issued
    assert revoke(rp, client_id, secret, tokens["refresh_token"]).status_code == 200
    assert revoke(rp, client_id, secret, tokens["refresh_token"]).status_code == 200


def test_another_clients_refresh_token_is_not_revoked(rp, issued, make_client):
    client_id, secret, tokens = issued
    other, other_secret = make_client()
    response = revoke(rp, other, other_secret, tokens["refresh_token"])
    assert response.status_code in (200, 400)
    assert rp.userinfo(tokens["access_token"]).status_code == 200
    assert rp.refresh(client_id, secret, tokens["refresh_token"]).status_code == 200


def test_another_clients_access_token_is_not_revoked(rp, issued, make_client):
    client_id, secret, tokens = issued
    other, other_secret = make_client()
    response = revoke(rp, other, other_secret, tokens["access_token"])
    assert response.status_code in (200, 400)
    assert rp.userinfo(tokens["access_token"]).status_code == 200


def test_revocation_requires_client_authentication(rp, issued):
    client_id, secret, tokens = issued
    anonymous = rp.browser.post("/revoke", data={"token": tokens["refresh_token"]})
    assert anonymous.status_code == 401 and anonymous.get_json()["error"] == "invalid_client"
    wrong = revoke(rp, client_id, "wrong", tokens["refresh_token"])
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_client"
    assert rp.refresh(client_id, secret, tokens["refresh_token"]).status_code == 200


def test_revocation_without_a_token_is_an_invalid_request(rp, issued):
    client_id, secret, _ = issued
    response = rp.browser.post("/revoke", data={}, headers=basic_auth(client_id, secret))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"


def test_a_public_client_revokes_its_own_refresh_token(rp, make_client, person):
    client_id, _ = make_client(trusted=True, token_endpoint_auth_method="none")
    tokens = rp.sign_in(client_id, None, auth="none", pkce=True)
    response = rp.browser.post("/revoke", data={"token": tokens["refresh_token"], "client_id": client_id})
    assert response.status_code == 200
    assert rp.refresh(client_id, None, tokens["refresh_token"], auth="none").status_code == 400
