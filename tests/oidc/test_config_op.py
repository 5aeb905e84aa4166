"""Config OP: the discovery document (OpenID Connect Discovery 1.0 §3, RFC 8414) and the JWKS
(RFC 7517), including signing-key rotation (`idp keys rotate`)."""

from __future__ import annotations

import jwt
import pytest

from idp.oauth import keys
from tests.oidc.conftest import ISSUER

SCOPES = "openid profile email phone address offline_access verification org delegation".split()
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.fixture
def discovery(client):
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def test_discovery_issuer_equals_the_configured_issuer_exactly(discovery, app):
    assert discovery["issuer"] == app.config["ISSUER"] == ISSUER


@pytest.mark.parametrize("settings_issuer", ["https://idp.example.gov.cn", "https://idp.example.gov.cn/"])
def test_discovery_issuer_follows_the_setting_without_a_trailing_slash(settings, settings_issuer):
    from idp import create_app

    app = create_app({**settings, "ISSUER": settings_issuer})
    with app.app_context():
        document = app.test_client().get("/.well-known/openid-configuration").get_json()
    assert document["issuer"] == "https://idp.example.gov.cn"
    assert document["authorization_endpoint"] == "https://idp.example.gov.cn/authorize"


def test_discovery_has_every_required_field(discovery):
    for name in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri",
                 "response_types_supported", "subject_types_supported",
                 "id_token_signing_alg_values_supported", "userinfo_endpoint", "scopes_supported",
                 "claims_supported", "code_challenge_methods_supported",
                 "authorization_response_iss_parameter_supported", "end_session_endpoint",
                 "backchannel_logout_supported"):
        assert name in discovery, name
    assert "code" in discovery["response_types_supported"]
    assert "public" in discovery["subject_types_supported"] or "pairwise" in discovery["subject_types_supported"]
    assert "RS256" in discovery["id_token_signing_alg_values_supported"]
    assert "none" not in discovery["id_token_signing_alg_values_supported"]
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert discovery["authorization_response_iss_parameter_supported"] is True
    assert discovery["backchannel_logout_supported"] is True


def test_discovery_scopes_are_exactly_those_of_the_interface(discovery):
    assert discovery["scopes_supported"] == SCOPES


def test_discovery_claims_cover_the_standard_and_platform_claims(discovery):
    for claim in ("sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "account_type",
                  "name", "preferred_username", "email", "phone_number", "address",
                  "verification_status", "org"):
        assert claim in discovery["claims_supported"], claim


def test_every_endpoint_url_starts_with_the_issuer(discovery):
    endpoints = {k: v for k, v in discovery.items() if k.endswith("_endpoint") or k == "jwks_uri"}
    assert len(endpoints) >= 7
    for name, url in endpoints.items():
        assert url.startswith(ISSUER + "/"), (name, url)


def test_every_advertised_endpoint_answers(discovery, client):
    for name in ("authorization_endpoint", "jwks_uri"):
        assert client.get(discovery[name][len(ISSUER):]).status_code != 404, name
    for name in ("token_endpoint", "introspection_endpoint", "revocation_endpoint", "userinfo_endpoint"):
        assert client.post(discovery[name][len(ISSUER):]).status_code in (400, 401), name


def test_jwks_has_rsa_and_ec_signing_keys_with_kids(client):
    response = client.get("/jwks.json")
    assert response.status_code == 200
    published = response.get_json()["keys"]
    assert {k["kty"] for k in published} >= {"RSA", "EC"}
    for key in published:
        assert key.get("kid"), key
        assert key.get("use") == "sig", key
        jwt.PyJWK(key)  # an independent library can read it
    assert len({k["kid"] for k in published}) == len(published)


def test_jwks_never_publishes_private_key_parts(client):
    for key in client.get("/jwks.json").get_json()["keys"]:
        assert not PRIVATE_MEMBERS & set(key), key


def test_discovery_and_jwks_are_cacheable_and_open_to_other_origins(client):
    for path in ("/.well-known/openid-configuration", "/jwks.json"):
        response = client.get(path)
        assert response.headers.get("Access-Control-Allow-Origin") == "*"
        assert "max-age" in response.headers.get("Cache-Control", "")


# --- rotation --------------------------------------------------------------------------------


def kids(client) -> set[str]:
    return {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]}


def test_key_rotation_publishes_new_keys_and_keeps_the_old_ones(client):
    before = kids(client)
    new = keys.rotate()
    after = kids(client)
    assert len(new) == 2 and not set(new) & before
    assert after == before | set(new)


def test_a_token_signed_before_rotation_still_verifies_after_it(rp, make_client, person, id_token_claims):
    client_id, secret = make_client(trusted=True)
    old = rp.sign_in(client_id, secret)
    keys.rotate()
    assert id_token_claims(old["id_token"], client_id)["sub"] == person.sub
    assert rp.userinfo(old["access_token"]).status_code == 200
    new = rp.sign_in(client_id, secret, prompt="login")
    assert jwt.get_unverified_header(new["id_token"])["kid"] != jwt.get_unverified_header(old["id_token"])["kid"]


def test_retired_keys_leave_the_jwks_once_their_tokens_have_expired(client, app, clock):
    before = kids(client)
    new = set(keys.rotate())
    lifetime = max(app.config["ACCESS_TOKEN_TTL"], app.config["ID_TOKEN_TTL"]) + 300
    clock.advance(lifetime - 60)
    assert kids(client) == before | new
    clock.advance(61)
    assert kids(client) == new


def test_retired_keys_leave_the_jwks_as_soon_as_the_provider_clock_passes_their_lifetime(client, app, clock):
    before = kids(client)
    new = set(keys.rotate())
    assert kids(client) == before | new  # a relying party fetches the JWKS after the rotation
    lifetime = max(app.config["ACCESS_TOKEN_TTL"], app.config["ID_TOKEN_TTL"]) + 300
    clock.advance(lifetime + 1)
    assert kids(client) == new
