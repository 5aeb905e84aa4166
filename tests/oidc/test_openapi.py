"""/openapi.json, and the provider fixes schemathesis found against it
(tests/integration/test_schemathesis.py runs schemathesis itself)."""

from __future__ import annotations

from idp.extensions import db
from idp.models.oauth import RefreshToken
from tests.oidc.conftest import basic_auth


def test_the_openapi_document_describes_every_json_endpoint_at_the_issuer(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": "http://localhost"}]
    assert set(document["paths"]) == {"/.well-known/openid-configuration", "/jwks.json", "/token",
                                      "/introspect", "/revoke", "/userinfo", "/connect/register",
                                      "/connect/register/{client_id}"}
    token = document["paths"]["/token"]["post"]
    assert "application/x-www-form-urlencoded" in token["requestBody"]["content"]
    assert {"200", "400", "401"} <= set(token["responses"])
    assert document["paths"]["/userinfo"]["get"]["responses"]["401"]["headers"]["WWW-Authenticate"]["required"]


def test_the_openapi_document_is_built_once_and_served_from_the_kept_bytes(app, client):
    first = client.get("/openapi.json")
    kept = app.extensions["idp.openapi"]
    second = client.get("/openapi.json")
    assert second.get_data() == first.get_data() == kept
    assert app.extensions["idp.openapi"] is kept
    assert second.headers["Cache-Control"] == "public, max-age=300"


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
