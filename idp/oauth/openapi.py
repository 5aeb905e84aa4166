"""The OpenAPI 3.1 description of the provider's JSON endpoints, served at ``/openapi.json``.

It describes the requests as relying parties and resource servers really send them (form bodies,
HTTP Basic or ``client_secret_post`` client authentication, Bearer tokens) and every answer each
endpoint can give, with its JSON schema: what outside tools (and schemathesis in the test suite,
tests/integration/test_schemathesis.py) check the live server against. The browser endpoints
(``/authorize``, ``/end-session``) answer HTML and redirects and are not described here.

The document depends only on the issuer: built once per application and kept as bytes, like
discovery (idp.oauth.published serves it before Flask).
"""

from __future__ import annotations

from idp.oauth.claims import SCOPES_SUPPORTED
from idp.oauth.keys import ALGORITHMS

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    answer = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def _error(codes: list[str], description: str, headers: dict | None = None) -> dict:
    """An OAuth error body (RFC 6749 §5.2) whose ``error`` is one of ``codes``."""
    schema = {"allOf": [_ref("OAuthError"), {"properties": {"error": {"enum": codes}}}]}
    return _json(schema, description, headers)


# RFC 6750 §3: the challenge of a refused Bearer request.
BEARER_CHALLENGE = {"WWW-Authenticate": {
    "description": "RFC 6750 §3 challenge: `Bearer realm=\"<issuer>\"`, with `error` and "
                   "`error_description` when a token was presented.",
    "required": True,
    "schema": {"type": "string", "pattern": "^Bearer realm=\""}}}

# RFC 6749 §5.2: a client that authenticated with the Authorization header gets its scheme back.
CLIENT_CHALLENGE = {"WWW-Authenticate": {
    "description": "RFC 6749 §5.2: the authentication scheme the client used (`Basic`), when it "
                   "used the Authorization header.",
    "required": False,
    "schema": {"type": "string"}}}

TOO_LARGE = _error(["invalid_request"], "The body is larger than the provider accepts.")
# Revocation and registration are Flask views: their 413 is the provider's error page.
TOO_LARGE_PAGE = {"description": "The body is larger than the provider accepts (the error page).",
                  "content": {"text/html": {"schema": {"type": "string"}}}}


def _client_auth_fields() -> dict:
    return {
        "client_id": {"type": "string", "description": "client_secret_post (RFC 6749 §2.3.1), "
                                                        "or a public client's identifier (`none`)."},
        "client_secret": {"type": "string", "description": "client_secret_post (RFC 6749 §2.3.1)."},
    }


METADATA_PROPERTIES = {
    "client_name": {"type": "string"},
    "redirect_uris": {"type": "array", "items": {"type": "string"}},
    "post_logout_redirect_uris": {"type": "array", "items": {"type": "string"}},
    "grant_types": {"type": "array", "items": {"type": "string"}},
    "response_types": {"type": "array", "items": {"type": "string"}},
    "token_endpoint_auth_method": {"type": "string"},
    "scope": {"type": "string"},
    "logo_uri": {"type": "string"},
    "initiate_login_uri": {"type": "string"},
    "backchannel_logout_uri": {"type": "string"},
    "backchannel_logout_session_required": {"type": "boolean"},
    "id_token_signed_response_alg": {"type": "string"},
    "allowed_account_types": {"type": "array", "items": {"type": "string", "enum": ["natural", "legal"]},
                              "description": "An extension of this provider: the kinds of account "
                                             "the system serves."},
}


def _schemas() -> dict:
    return {
        "OAuthError": {
            "type": "object",
            "description": "RFC 6749 §5.2 error response (also RFC 6750 §3.1, RFC 7009 §2.2.1, "
                           "RFC 7591 §3.2.2).",
            "required": ["error"],
            "properties": {
                "error": {"type": "string", "pattern": "^[\\x20-\\x21\\x23-\\x5B\\x5D-\\x7E]+$"},
                "error_description": {"type": "string"},
                "error_uri": {"type": "string"},
                "state": {"type": "string"},
            },
        },
        "TokenResponse": {
            "type": "object",
            "description": "RFC 6749 §5.1; OpenID Connect Core §3.1.3.3 (`id_token`).",
            "required": ["access_token", "token_type", "expires_in"],
            "properties": {
                "access_token": {"type": "string", "description": "An RFC 9068 JWT."},
                "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer", "minimum": 1},
                "refresh_token": {"type": "string"},
                "id_token": {"type": "string"},
                "scope": {"type": "string"},
            },
        },
        "Introspection": {
            "type": "object",
            "description": "RFC 7662 §2.2: `{\"active\": false}` alone for any token that is "
                           "not active, unknown or malformed.",
            "required": ["active"],
            "properties": {
                "active": {"type": "boolean"},
                "scope": {"type": "string"},
                "client_id": {"type": "string"},
                "token_type": {"type": "string"},
                "exp": {"type": "integer"},
                "iat": {"type": "integer"},
                "sub": {"type": ["string", "null"]},
                "aud": {"type": ["string", "array"]},
                "iss": {"type": "string"},
                "jti": {"type": "string"},
                "account_type": {"type": "string", "enum": ["natural", "legal"]},
                "sid": {"type": "string"},
                "auth_time": {"type": "integer"},
                "represents": {"type": "object"},
            },
        },
        "UserInfo": {
            "type": "object",
            "description": "OpenID Connect Core §5.3.2; the claims of the token's scopes "
                           "(absent data: an absent claim, never an empty string).",
            "required": ["sub", "account_type"],
            "properties": {
                "sub": {"type": "string", "minLength": 1},
                "account_type": {"type": "string", "enum": ["natural", "legal"]},
                "preferred_username": {"type": "string"},
                "name": {"type": "string"},
                "email": {"type": "string"},
                "email_verified": {"type": "boolean"},
                "phone_number": {"type": "string"},
                "phone_number_verified": {"type": "boolean"},
                "verification_status": {"type": "string", "enum": [
                    "unverified", "pending", "verified_auto", "verified_manual", "rejected"]},
                "verified_claims": {"type": "object"},
                "org": {"type": "object"},
                "delegations": {"type": "array", "items": {"type": "object"}},
                "represents": {"type": "object"},
            },
        },
        "ClientMetadata": {
            "type": "object",
            "description": "RFC 7591 §2 client metadata (unsupported members are ignored).",
            "properties": METADATA_PROPERTIES,
        },
        "ClientInformation": {
            "type": "object",
            "description": "RFC 7591 §3.2.1 / RFC 7592 §3: the registered metadata with the "
                           "client's credentials and its management address.",
            "required": ["client_id", "client_name", "redirect_uris", "grant_types",
                         "token_endpoint_auth_method", "registration_access_token",
                         "registration_client_uri"],
            "properties": {
                **METADATA_PROPERTIES,
                "client_id": {"type": "string", "minLength": 1},
                "client_secret": {"type": "string", "minLength": 1},
                "client_id_issued_at": {"type": "integer"},
                "client_secret_expires_at": {"type": "integer", "minimum": 0},
                "registration_access_token": {"type": "string", "minLength": 1},
                "registration_client_uri": {"type": "string", "minLength": 1},
            },
        },
        "Discovery": {
            "type": "object",
            "description": "OpenID Connect Discovery 1.0 §3 / RFC 8414 §2.",
            "required": ["issuer", "authorization_endpoint", "token_endpoint", "jwks_uri",
                         "response_types_supported", "subject_types_supported",
                         "id_token_signing_alg_values_supported"],
            "properties": {
                "issuer": {"type": "string"},
                "authorization_endpoint": {"type": "string"},
                "token_endpoint": {"type": "string"},
                "userinfo_endpoint": {"type": "string"},
                "jwks_uri": {"type": "string"},
                "introspection_endpoint": {"type": "string"},
                "revocation_endpoint": {"type": "string"},
                "end_session_endpoint": {"type": "string"},
                "registration_endpoint": {"type": "string"},
                "scopes_supported": {"type": "array", "items": {"type": "string"}},
                "response_types_supported": {"type": "array", "items": {"type": "string"}},
                "subject_types_supported": {"type": "array", "items": {"type": "string"}},
                "id_token_signing_alg_values_supported": {"type": "array", "items": {"type": "string"}},
            },
        },
        "JWKS": {
            "type": "object",
            "description": "RFC 7517 §5: the public keys that verify ID and access tokens.",
            "required": ["keys"],
            "properties": {"keys": {"type": "array", "items": {
                "type": "object", "required": ["kty", "kid"],
                "properties": {"kty": {"type": "string"}, "kid": {"type": "string"},
                               "use": {"type": "string"}, "alg": {"type": "string"}}}}},
        },
    }


def _token_operation() -> dict:
    return {
        "summary": "Token endpoint (RFC 6749 §3.2, OpenID Connect Core §3.1.3)",
        "operationId": "token",
        "security": [{"clientBasic": []}, {}],
        "description": "Confidential clients authenticate with HTTP Basic (`client_secret_basic`) "
                       "or `client_id` and `client_secret` in the body (`client_secret_post`); "
                       "public clients send `client_id` and a PKCE `code_verifier`.",
        "requestBody": {"required": True, "content": {FORM: {"schema": {
            "type": "object",
            "required": ["grant_type"],
            "properties": {
                "grant_type": {"type": "string",
                               "enum": ["authorization_code", "refresh_token", "client_credentials"]},
                "code": {"type": "string"},
                "redirect_uri": {"type": "string"},
                "code_verifier": {"type": "string", "description": "RFC 7636 §4.5"},
                "refresh_token": {"type": "string"},
                "scope": {"type": "string"},
                **_client_auth_fields(),
            },
        }}}},
        "responses": {
            "200": _json(_ref("TokenResponse"), "The tokens (RFC 6749 §5.1)."),
            "400": _error(["invalid_request", "invalid_grant", "unauthorized_client",
                           "unsupported_grant_type", "invalid_scope"],
                          "RFC 6749 §5.2: the request is refused."),
            "401": _error(["invalid_client"], "RFC 6749 §5.2: client authentication failed.",
                          CLIENT_CHALLENGE),
            "413": TOO_LARGE,
        },
    }


def _introspection_operation() -> dict:
    return {
        "summary": "Token introspection (RFC 7662)",
        "operationId": "introspect",
        "description": "Any confidential client may ask (resource servers are clients too), "
                       "with HTTP Basic or `client_secret_post`.",
        "security": [{"clientBasic": []}, {}],
        "requestBody": {"required": True, "content": {FORM: {"schema": {
            "type": "object",
            "required": ["token"],
            "properties": {
                "token": {"type": "string"},
                "token_type_hint": {"type": "string"},
                **_client_auth_fields(),
            },
        }}}},
        "responses": {
            "200": _json(_ref("Introspection"), "RFC 7662 §2.2."),
            "400": _error(["invalid_request"], "RFC 7662 §2.3 (an unknown `token_type_hint` is "
                                               "ignored, RFC 7662 §2.1)."),
            "401": _error(["invalid_client"], "RFC 7662 §2.3: client authentication failed.",
                          CLIENT_CHALLENGE),
            "413": TOO_LARGE,
        },
    }


def _revocation_operation() -> dict:
    return {
        "summary": "Token revocation (RFC 7009)",
        "operationId": "revoke",
        "description": "A client revokes its own access or refresh tokens (a refresh token with "
                       "the access tokens of its grant). An unknown token is answered 200 as well "
                       "(RFC 7009 §2.2).",
        "security": [{"clientBasic": []}, {}],
        "requestBody": {"required": True, "content": {FORM: {"schema": {
            "type": "object",
            "required": ["token"],
            "properties": {
                "token": {"type": "string"},
                "token_type_hint": {"type": "string", "enum": ["access_token", "refresh_token"]},
                **_client_auth_fields(),
            },
        }}}},
        "responses": {
            "200": _json({"type": "object", "maxProperties": 0}, "RFC 7009 §2.2: done (an empty object)."),
            "400": _error(["invalid_request", "unsupported_token_type"], "RFC 7009 §2.2.1."),
            "401": _error(["invalid_client"], "RFC 7009 §2.2.1: client authentication failed.",
                          CLIENT_CHALLENGE),
            "413": TOO_LARGE_PAGE,
        },
    }


def _userinfo_responses() -> dict:
    return {
        "200": _json(_ref("UserInfo"), "OpenID Connect Core §5.3.2."),
        "400": _error(["invalid_request"], "RFC 6750 §3.1: the token sent two ways.", BEARER_CHALLENGE),
        "401": _error(["invalid_request", "invalid_token"],
                      "RFC 6750 §3.1: no token, or a token that is invalid, expired or revoked.",
                      BEARER_CHALLENGE),
        "403": _error(["insufficient_scope"], "RFC 6750 §3.1: the token's scope lacks `openid`.",
                      BEARER_CHALLENGE),
    }


def _userinfo() -> dict:
    get = {
        "summary": "UserInfo (OpenID Connect Core §5.3)",
        "operationId": "userinfo",
        "security": [{"accessToken": []}],
        "responses": _userinfo_responses(),
    }
    post = {
        "summary": "UserInfo by POST (OpenID Connect Core §5.3.1)",
        "operationId": "userinfoPost",
        "description": "The access token in the Authorization header or in the body's "
                       "`access_token` (RFC 6750 §2.2), never both.",
        "security": [{"accessToken": []}, {}],
        "requestBody": {"required": False, "content": {FORM: {"schema": {
            "type": "object", "properties": {"access_token": {"type": "string"}}}}}},
        "responses": {**_userinfo_responses(), "413": TOO_LARGE},
    }
    return {"get": get, "post": post}


REGISTRATION_ERRORS = ["invalid_request", "invalid_redirect_uri", "invalid_client_metadata"]


def _registration() -> dict:
    return {"post": {
        "summary": "Dynamic client registration (RFC 7591 §3)",
        "operationId": "register",
        "description": "With an initial access token issued in the console or by "
                       "`idp clients initial-token`. Registered clients are never trusted (they "
                       "always show the consent page).",
        "security": [{"initialAccessToken": []}],
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref("ClientMetadata")}}},
        "responses": {
            "201": _json(_ref("ClientInformation"), "RFC 7591 §3.2.1."),
            "400": _error(REGISTRATION_ERRORS, "RFC 7591 §3.2.2."),
            "401": _error(["invalid_token"], "RFC 6750 §3.1: the initial access token is missing, "
                                             "invalid, expired, revoked or used up.", BEARER_CHALLENGE),
            "413": TOO_LARGE_PAGE,
        },
    }}


def _configuration() -> dict:
    client_id = [{"name": "client_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    refused = {
        "401": _error(["invalid_token"], "RFC 7592 §2: the registration access token is missing "
                                         "or not this client's.", BEARER_CHALLENGE),
        "403": _error(["unauthorized_client"], "RFC 7592 §2: the client was disabled in the console."),
    }
    return {
        "parameters": client_id,
        "get": {
            "summary": "Read a registered client (RFC 7592 §2.1)",
            "operationId": "readClient",
            "security": [{"registrationAccessToken": []}],
            "responses": {"200": _json(_ref("ClientInformation"), "RFC 7592 §3."), **refused},
        },
        "put": {
            "summary": "Update a registered client (RFC 7592 §2.2)",
            "operationId": "updateClient",
            "security": [{"registrationAccessToken": []}],
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("ClientMetadata")}}},
            "responses": {
                "200": _json(_ref("ClientInformation"), "RFC 7592 §3."),
                "400": _error(REGISTRATION_ERRORS, "RFC 7592 §3 / RFC 7591 §3.2.2."),
                **refused,
                "413": TOO_LARGE_PAGE,
            },
        },
        "delete": {
            "summary": "Delete a registered client (RFC 7592 §2.3)",
            "operationId": "deleteClient",
            "security": [{"registrationAccessToken": []}],
            "responses": {"204": {"description": "Deleted; its tokens end with it."}, **refused},
        },
    }


def _public_document(operation_id: str, schema: str, summary: str) -> dict:
    return {"get": {
        "summary": summary,
        "operationId": operation_id,
        "security": [],
        "responses": {"200": _json(_ref(schema), summary + ".")},
    }}


def document(issuer: str) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Identity provider: OAuth 2.0 and OpenID Connect JSON endpoints",
            "version": "1",
            "description": "Scopes supported: " + " ".join(SCOPES_SUPPORTED) + ". Tokens are "
                           "signed with " + ", ".join(ALGORITHMS) + " (keys at `/jwks.json`).",
        },
        "servers": [{"url": issuer}],
        "paths": {
            "/.well-known/openid-configuration": _public_document(
                "discovery", "Discovery", "OpenID Connect Discovery 1.0 metadata"),
            "/jwks.json": _public_document("jwks", "JWKS", "The published signing keys (JWK Set)"),
            "/token": {"post": _token_operation()},
            "/introspect": {"post": _introspection_operation()},
            "/revoke": {"post": _revocation_operation()},
            "/userinfo": _userinfo(),
            "/connect/register": _registration(),
            "/connect/register/{client_id}": _configuration(),
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "clientBasic": {"type": "http", "scheme": "basic",
                                "description": "client_secret_basic (RFC 6749 §2.3.1): the "
                                               "form-encoded client_id and secret."},
                "accessToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                "description": "An access token of this provider (RFC 6750 §2.1)."},
                "initialAccessToken": {"type": "http", "scheme": "bearer",
                                       "description": "RFC 7591 §3: an initial access token."},
                "registrationAccessToken": {"type": "http", "scheme": "bearer",
                                            "description": "RFC 7592 §1: the token returned at "
                                                           "registration."},
            },
        },
    }
