"""What fuzzing found, each with its fix: schemathesis against the live provider
(tests/integration/test_schemathesis.py) and the parser properties
(tests/unit/test_parser_properties.py). Each test is the hostile request itself, the clear
answer, and that nothing changed."""

from __future__ import annotations

from idp.extensions import db
from idp.models.clients import Client
from idp.models.staff import InitialAccessToken
from idp.models.oauth import RefreshToken
from tests.oidc.conftest import basic_auth, bearer


# -- found by schemathesis -----------------------------------------------------------------------

def test_revoking_with_an_unknown_token_type_hint_is_400_unsupported_token_type_not_a_401_challenge(
        client, issued):
    """RFC 7009 §2.2.1: an error response (400); Authlib's error was a 401 with a challenge,
    which a client reads as its credentials being wrong."""
    client_id, secret, tokens = issued
    response = client.post("/revoke", headers=basic_auth(client_id, secret),
                           data={"token": tokens["refresh_token"], "token_type_hint": "id_token"})
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_token_type"
    assert "WWW-Authenticate" not in response.headers
    row = db.session.execute(db.select(RefreshToken)).scalars().one()
    assert row.revoked_at is None  # nothing revoked


def test_an_unknown_token_type_hint_at_introspection_is_ignored_and_the_token_still_looked_up(
        client, issued):
    """RFC 7662 §2.1: the server extends its search to every token type; the answer for an
    unknown or malformed token stays {"active": false}."""
    client_id, secret, tokens = issued
    response = client.post("/introspect", headers=basic_auth(client_id, secret),
                           data={"token": tokens["access_token"], "token_type_hint": "Ǆ\x01"})
    assert response.status_code == 200 and response.get_json()["active"] is True
    response = client.post("/introspect", headers=basic_auth(client_id, secret),
                           data={"token": "not-a-token", "token_type_hint": "saml"})
    assert response.status_code == 200 and response.get_json() == {"active": False}


def test_a_method_not_allowed_names_the_allowed_methods_in_allow(client):
    """RFC 9110 §15.5.6: the error page of a 405 kept the Allow header it lost before."""
    for path, allowed in (("/revoke", {"POST"}), ("/jwks.json", {"GET"}),
                          ("/connect/register", {"POST"})):
        response = client.open(path, method="TRACE")
        assert response.status_code == 405
        assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}, path


# -- found by the parser properties --------------------------------------------------------------

def test_a_redirect_uri_with_an_unbalanced_ipv6_bracket_is_400_invalid_redirect_uri_not_a_500(client):
    """urlsplit raised ValueError on "https://[::1/cb" inside idp.clients.check_uri: the
    registration endpoint answered 500."""
    from idp import clients

    _, token = clients.issue_initial_access_token("自助注册", 7, 1, "client_manager_1")
    db.session.commit()
    response = client.post("/connect/register", headers=bearer(token), json={
        "client_name": "恶意系统", "redirect_uris": ["https://[::1/cb"]})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_redirect_uri"
    assert db.session.execute(db.select(db.func.count()).select_from(Client)).scalar() == 0
    row = db.session.execute(db.select(InitialAccessToken)).scalar_one()
    assert row.uses == 0  # the token's one use is still there


def test_a_scope_asked_for_twice_is_granted_once(rp, make_client, person):
    """RFC 6749 §3.3: the scope is a set; "openid openid profile openid" was granted and
    written into the access token as it came."""
    import jwt

    client_id, secret = make_client(trusted=True)
    tokens = rp.sign_in(client_id, secret, scope="openid openid profile openid")
    assert tokens["scope"].split() == ["openid", "profile"]
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["scope"] == "openid profile"
