"""Token introspection (RFC 7662): active with scope, client_id, sub and exp for a live token;
inactive for revoked, expired and unknown ones; client authentication required."""

from __future__ import annotations

import pytest

from tests.oidc.conftest import basic_auth


def introspect(rp, client_id, secret, token, **extra):
    return rp.browser.post("/introspect", data={"token": token, **extra}, headers=basic_auth(client_id, secret))


def test_a_live_access_token_is_active_with_its_details(rp, issued, person, clock):
    client_id, secret, tokens = issued
    response = introspect(rp, client_id, secret, tokens["access_token"])
    assert response.status_code == 200
    body = response.get_json()
    assert body["active"] is True
    assert body["scope"] == "openid profile"
    assert body["client_id"] == client_id
    assert body["sub"] == person.sub
    assert body["exp"] > clock.time()
    assert response.headers["Cache-Control"] == "no-store"


def test_a_live_access_token_is_active_with_the_type_hint(rp, issued):
    client_id, secret, tokens = issued
    response = introspect(rp, client_id, secret, tokens["access_token"], token_type_hint="access_token")
    assert response.status_code == 200 and response.get_json()["active"] is True


def test_a_refresh_token_introspects_too(rp, issued, person, clock):
    client_id, secret, tokens = issued
    for hint in ({}, {"token_type_hint": "refresh_token"}):
        response = introspect(rp, client_id, secret, tokens["refresh_token"], **hint)
        assert response.status_code == 200
        body = response.get_json()
        assert body["active"] is True
        assert body["client_id"] == client_id and body["sub"] == person.sub
        assert body["scope"] == "openid profile" and body["exp"] > clock.time()


def test_a_rotated_refresh_token_is_inactive(rp, issued):
    client_id, secret, tokens = issued
    rp.refresh(client_id, secret, tokens["refresh_token"])
    response = introspect(rp, client_id, secret, tokens["refresh_token"])
    assert response.status_code == 200 and response.get_json() == {"active": False}


def test_a_revoked_access_token_is_inactive(rp, issued):
    client_id, secret, tokens = issued
    rp.browser.post("/revoke", data={"token": tokens["refresh_token"]}, headers=basic_auth(client_id, secret))
    response = introspect(rp, client_id, secret, tokens["access_token"])
    assert response.status_code == 200 and response.get_json() == {"active": False}


def test_a_revoked_refresh_token_is_inactive(rp, issued):
    client_id, secret, tokens = issued
    rp.browser.post("/revoke", data={"token": tokens["refresh_token"]}, headers=basic_auth(client_id, secret))
    response = introspect(rp, client_id, secret, tokens["refresh_token"])
    assert response.status_code == 200 and response.get_json() == {"active": False}


def test_an_expired_access_token_is_inactive(rp, issued, clock, app):
    client_id, secret, tokens = issued
    clock.advance(app.config["ACCESS_TOKEN_TTL"] + 1)
    response = introspect(rp, client_id, secret, tokens["access_token"])
    assert response.status_code == 200 and response.get_json() == {"active": False}


def test_an_expired_refresh_token_is_inactive(rp, issued, clock, app):
    client_id, secret, tokens = issued
    clock.advance(app.config["REFRESH_TOKEN_TTL"] + 1)
    response = introspect(rp, client_id, secret, tokens["refresh_token"])
    assert response.status_code == 200 and response.get_json() == {"active": False}


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 9000])
def test_a_garbage_token_is_inactive(rp, make_client, token):
    client_id, secret = make_client()
    response = introspect(rp, client_id, secret, token)
    assert response.status_code == 200 and response.get_json() == {"active": False}


def test_introspection_requires_client_authentication(rp, issued):
    client_id, secret, tokens = issued
    response = rp.browser.post("/introspect", data={"token": tokens["refresh_token"]})
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
    wrong = introspect(rp, client_id, "wrong", tokens["refresh_token"])
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_client"


def test_a_public_client_cannot_introspect(rp, issued, make_client):
    _, _, tokens = issued
    public, _ = make_client(token_endpoint_auth_method="none")
    response = rp.browser.post("/introspect", data={"token": tokens["refresh_token"], "client_id": public})
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


def test_introspection_without_a_token_is_an_invalid_request(rp, issued):
    client_id, secret, _ = issued
    response = rp.browser.post("/introspect", data={}, headers=basic_auth(client_id, secret))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"
