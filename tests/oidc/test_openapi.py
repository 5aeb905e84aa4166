"""/openapi.json: the OpenAPI description that schemathesis checks the live provider against
(tests/integration/test_schemathesis.py; what it found: test_found_by_fuzzing.py)."""

from __future__ import annotations



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
