"""Basic OP: the ID token of the authorization-code flow (OIDC Core §2, §3.1.3.6, §3.1.3.7),
verified with PyJWT against /jwks.json."""

from __future__ import annotations

import base64
import hashlib

import jwt
import pytest

from tests.oidc.conftest import ISSUER, b64json, header_of, set_client


def half_hash(value: str) -> str:
    """OIDC Core §3.1.3.6 at_hash for SHA-256 algorithms (RS256, ES256)."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


@pytest.fixture
def rp_client(make_client):
    return make_client(trusted=True)


def test_code_flow_with_scope_openid_returns_a_code_and_an_id_token(rp, rp_client, person):
    client_id, secret = rp_client
    tokens = rp.sign_in(client_id, secret, scope="openid")
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["access_token"] and tokens["id_token"]
    assert tokens["claims"]["sub"] == person.sub


def test_id_token_is_signed_rs256_by_default_and_verifies_with_an_independent_library(
        rp, rp_client, person, jwks):
    client_id, secret = rp_client
    token = rp.sign_in(client_id, secret)["id_token"]
    header = header_of(token)
    assert header["alg"] == "RS256"
    assert header["kid"] in jwks()
    claims = jwt.decode(token, key=jwks()[header["kid"]], algorithms=["RS256"], audience=client_id,
                        issuer=ISSUER, options={"verify_exp": False, "verify_iat": False})
    assert claims["sub"] == person.sub


def test_id_token_has_the_required_claims_and_account_type(rp, rp_client, person, clock, app):
    client_id, secret = rp_client
    claims = rp.sign_in(client_id, secret)["claims"]
    assert claims["iss"] == ISSUER
    assert claims["sub"] == person.sub
    assert client_id in (claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]])
    assert claims["iat"] == pytest.approx(clock.time(), abs=2)
    assert claims["exp"] == claims["iat"] + app.config["ID_TOKEN_TTL"]
    assert claims["auth_time"] == pytest.approx(clock.time(), abs=2)
    assert claims["account_type"] == "natural"


def test_id_token_of_a_legal_account_says_legal(rp, rp_client, unit):
    client_id, secret = rp_client
    claims = rp.sign_in(client_id, secret, login_name="fz_unit", account_type="legal")["claims"]
    assert claims["account_type"] == "legal"
    assert claims["sub"] == unit.sub


def test_id_token_carries_no_scope_claims_with_an_access_token_issued(rp, rp_client, person):
    client_id, secret = rp_client
    claims = rp.sign_in(client_id, secret, scope="openid profile email phone")["claims"]
    assert "phone_number" not in claims and "email" not in claims


def test_nonce_is_echoed_when_sent(rp, rp_client, person):
    client_id, secret = rp_client
    assert rp.sign_in(client_id, secret, nonce="n-0S6_WzA2Mj")["claims"]["nonce"] == "n-0S6_WzA2Mj"


def test_nonce_is_optional_in_the_code_flow_and_absent_when_not_sent(rp, rp_client, person):
    client_id, secret = rp_client
    tokens = rp.sign_in(client_id, secret)
    assert "nonce" not in tokens["claims"]


def test_id_token_has_the_session_id(rp, rp_client, person):
    client_id, secret = rp_client
    tokens = rp.sign_in(client_id, secret)
    assert tokens["claims"]["sid"]
    assert tokens["claims"]["sid"] == rp.session()["sid"]


def test_id_token_at_hash_matches_the_access_token(rp, rp_client, person):
    client_id, secret = rp_client
    tokens = rp.sign_in(client_id, secret)
    assert tokens["claims"]["at_hash"] == half_hash(tokens["access_token"])


def test_id_token_is_never_unsigned(rp, rp_client, person):
    client_id, secret = rp_client
    for _ in range(2):
        tokens = rp.sign_in(client_id, secret, prompt="login")
        assert header_of(tokens["id_token"])["alg"] not in ("none", "None", "")
        assert tokens["id_token"].count(".") == 2 and tokens["id_token"].split(".")[2]


def test_id_token_is_es256_when_the_client_registered_es256(rp, rp_client, person, jwks):
    client_id, secret = rp_client
    set_client(client_id, id_token_signed_response_alg="ES256")
    tokens = rp.sign_in(client_id, secret)
    header = header_of(tokens["id_token"])
    assert header["alg"] == "ES256"
    assert jwks()[header["kid"]].key_type == "EC"
    assert tokens["claims"]["at_hash"] == half_hash(tokens["access_token"])


def test_forged_unsigned_id_token_does_not_verify_against_the_jwks(rp, rp_client, person, id_token_claims):
    """The helper itself refuses alg none, as a certified RP would."""
    client_id, secret = rp_client
    claims = rp.sign_in(client_id, secret)["claims"]
    forged = b64json({"alg": "none", "typ": "JWT"}) + "." + b64json(claims) + "."
    with pytest.raises(AssertionError):
        id_token_claims(forged, client_id)


def test_id_token_for_one_client_is_not_accepted_as_another_clients(rp, make_client, person, id_token_claims):
    first, secret = make_client(trusted=True)
    other, _ = make_client(trusted=True)
    token = rp.sign_in(first, secret)["id_token"]
    with pytest.raises(jwt.InvalidAudienceError):
        id_token_claims(token, other)


def test_a_client_configured_for_unsigned_id_tokens_still_never_gets_one(rp, rp_client, person):
    client_id, secret = rp_client
    set_client(client_id, id_token_signed_response_alg="none")
    flow = rp.authorize(client_id)
    response = rp.redeem(client_id, secret, flow.code)
    assert response.status_code < 500
    if response.status_code == 200:
        assert header_of(response.get_json()["id_token"])["alg"] in ("RS256", "ES256")
