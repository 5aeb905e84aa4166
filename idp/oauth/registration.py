"""Dynamic Client Registration (RFC 7591) and its management protocol (RFC 7592), on Authlib's
endpoints; the rules are those of the console (``idp.clients``), so a redirect URI refused
there is refused here, as ``invalid_redirect_uri``.

- ``POST /connect/register`` with ``Authorization: Bearer <initial access token>`` (issued in
  the console or by ``idp clients initial-token``, SHA-256 stored, limited in time and uses)
  → 201 with the client's metadata,
  ``client_id``, ``client_secret`` (not for ``token_endpoint_auth_method`` ``none``),
  ``registration_access_token`` and ``registration_client_uri``.
- ``GET`` / ``PUT`` / ``DELETE /connect/register/<client_id>`` with ``Authorization: Bearer
  <registration access token>``. A missing or wrong token, or a token of another client, is
  401 ``invalid_token``; a client disabled in the console is 403.

Clients registered here are never trusted (they always show the consent page) and wait for
staff approval before the service catalogue lists them with their entry link (issue 12; they
can sign users in before it). ``initiate_login_uri`` must share its origin with a redirect URI,
here as in the console (``invalid_client_metadata``, nothing stored, the old values kept on
update); an update that changes what the catalogue shows needs approval again. Metadata this
provider does not support (``jwks``, ``contacts``, ``tos_uri`` …) is ignored, as RFC 7591
§2 asks. Also here: the public route of logos uploaded in the console.
"""

from __future__ import annotations

from urllib.parse import quote

from authlib.oauth2.rfc6749 import InvalidRequestError, JsonPayload, JsonRequest, scope_to_list
from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oauth2.rfc7591 import (
    ClientMetadataClaims,
    ClientRegistrationEndpoint,
    InvalidClientMetadataError,
    InvalidRedirectURIError,
)
from authlib.oauth2.rfc7592 import ClientConfigurationEndpoint
from flask import Blueprint, Flask, abort, current_app, send_file
from flask import request as flask_request
from joserfc.errors import InvalidClaimError, JoseError

from idp import clients
from idp.clients import ACCOUNT_TYPES, AUTH_METHODS, GRANT_TYPES, ClientError, ClientSpec
from idp.extensions import csrf
from idp.forms import has_refused_characters
from idp.http import no_store
from idp.models.clients import Client
from idp.oauth.claims import SCOPES_SUPPORTED
from idp.oauth.keys import ALGORITHMS

bp = Blueprint("clients_public", __name__)

REGISTRATION_PATH = "/connect/register"


def _is_str_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_str(value) -> bool:
    return isinstance(value, str)


# The metadata this provider keeps, with the JSON type each must have.
METADATA_TYPES = {
    "client_name": _is_str,
    "redirect_uris": _is_str_list,
    "post_logout_redirect_uris": _is_str_list,
    "grant_types": _is_str_list,
    "response_types": _is_str_list,
    "token_endpoint_auth_method": _is_str,
    "scope": _is_str,
    "logo_uri": _is_str,
    "initiate_login_uri": _is_str,
    "backchannel_logout_uri": _is_str,
    "backchannel_logout_session_required": lambda v: isinstance(v, bool),
    "id_token_signed_response_alg": _is_str,
    # An extension of this provider: which kinds of account the system serves.
    "allowed_account_types": _is_str_list,
}


class RegistrationClaims(ClientMetadataClaims):
    """Authlib's RFC 7591 metadata validation, limited to what this provider supports, with
    JSON types checked first; the redirect URI rules are left to ``idp.clients``."""

    REGISTERED_CLAIMS = list(METADATA_TYPES)

    def __init__(self, claims, header, options=None, params=None):
        super().__init__({k: v for k, v in claims.items() if k in METADATA_TYPES}, header, options, params)

    def validate(self, now=None, leeway=0):
        for key, valid in METADATA_TYPES.items():
            if key in self and self[key] is not None and not valid(self[key]):
                raise InvalidClaimError(key)
        super().validate(now, leeway)
        alg = self.get("id_token_signed_response_alg")
        if alg is not None and alg not in ALGORITHMS:
            raise InvalidClaimError("id_token_signed_response_alg")

    def validate_redirect_uris(self):
        """Exact, absolute, https in production: checked by ``idp.clients.validate``."""


def server_metadata() -> dict:
    return {
        "scopes_supported": list(SCOPES_SUPPORTED),
        "response_types_supported": ["code"],
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
    }


# -- requests, tokens, metadata ---------------------------------------------------------------

class _Payload(JsonPayload):
    def __init__(self, data: dict) -> None:
        self._data = data

    @property
    def data(self) -> dict:
        return self._data


def _json_request() -> JsonRequest:
    """The request for Authlib; a body that is not a JSON object counts as empty (answered
    with a JSON error, never with an HTML page)."""
    json_request = JsonRequest(flask_request.method, flask_request.url, flask_request.headers)
    body = flask_request.get_json(silent=True) if flask_request.method in ("POST", "PUT") else None
    json_request.payload = _Payload(body if isinstance(body, dict) else {})
    return json_request


def _bearer(json_request) -> str | None:
    scheme, _, value = (json_request.headers.get("Authorization") or "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def _invalid_token(description: str) -> InvalidTokenError:
    return InvalidTokenError(description=description, realm=current_app.config["ISSUER"])


def _extract(json_request) -> dict:
    data = json_request.payload.data
    if not data:
        raise InvalidRequestError("The body must be a JSON object of client metadata.")
    if "redirect_uris" in data and not _is_str_list(data["redirect_uris"]):
        raise InvalidRedirectURIError("redirect_uris must be an array of strings.")
    options = RegistrationClaims.get_claims_options(server_metadata())
    claims = RegistrationClaims(data, {}, options, server_metadata())
    try:
        claims.validate()
    except JoseError as error:
        raise InvalidClientMetadataError(error.description) from error
    return claims.get_registered_claims()


def _spec(metadata: dict) -> ClientSpec:
    name = (metadata.get("client_name") or "").strip()
    if not name:
        raise InvalidClientMetadataError("client_name is required.")
    if has_refused_characters(name):
        raise InvalidClientMetadataError("client_name contains characters that cannot be accepted.")
    return ClientSpec(
        name=name,
        redirect_uris=list(metadata.get("redirect_uris") or []),
        post_logout_redirect_uris=list(metadata.get("post_logout_redirect_uris") or []),
        grant_types=list(dict.fromkeys(metadata.get("grant_types") or ["authorization_code"])),
        scopes=list(dict.fromkeys(scope_to_list(metadata.get("scope") or "") or ["openid"])),
        allowed_account_types=list(dict.fromkeys(metadata.get("allowed_account_types") or ACCOUNT_TYPES)),
        token_endpoint_auth_method=metadata.get("token_endpoint_auth_method") or "client_secret_basic",
        logo_uri=metadata.get("logo_uri") or None,
        initiate_login_uri=metadata.get("initiate_login_uri") or None,
        backchannel_logout_uri=metadata.get("backchannel_logout_uri") or None,
    )


def _refused(error: ClientError):
    """RFC 7591 §3.2.2: a redirect URI problem is invalid_redirect_uri, any other one
    invalid_client_metadata; the description names the field and the reason code."""
    description = f"{error.field}: {error.reason}"
    if error.field == "redirect_uris":
        return InvalidRedirectURIError(description)
    return InvalidClientMetadataError(description)


def metadata_of(client: Client) -> dict:
    """The registered metadata of a client, as RFC 7591 names it."""
    data = {
        "client_name": client.name,
        "redirect_uris": list(client.redirect_uris or []),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris or []),
        "grant_types": list(client.grant_types or []),
        "response_types": list(client.response_types or ["code"]),
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "scope": " ".join(client.scopes or []),
        "allowed_account_types": list(client.allowed_account_types or []),
    }
    for name in ("logo_uri", "initiate_login_uri", "backchannel_logout_uri", "id_token_signed_response_alg"):
        if getattr(client, name):
            data[name] = getattr(client, name)
    if client.backchannel_logout_uri:
        data["backchannel_logout_session_required"] = True  # logout tokens always carry sid
    return data


def _registration_info(client: Client, registration_token: str) -> dict:
    info = {
        "client_id": client.client_id,
        "client_id_issued_at": int(client.created_at.timestamp()),
        "registration_access_token": registration_token,
        "registration_client_uri": (current_app.config["ISSUER"] + REGISTRATION_PATH + "/"
                                    + quote(client.client_id, safe="")),
    }
    if not client.is_public:
        info["client_secret_expires_at"] = 0  # secrets do not expire (they are rotated)
    return info


# -- the endpoints ----------------------------------------------------------------------------

class Registration(ClientRegistrationEndpoint):
    """RFC 7591, for holders of an initial access token."""

    def create_endpoint_request(self, request):
        return _json_request()

    def authenticate_token(self, request):
        token = clients.usable_initial_access_token(_bearer(request))
        if token is None:
            raise _invalid_token("The initial access token is missing, invalid, expired, revoked or used up.")
        return token

    def extract_client_metadata(self, request):
        return _extract(request)

    def generate_client_info(self, request):
        return {"client_id": clients.new_client_id()}

    def save_client(self, client_info, client_metadata, request):
        spec = _spec(client_metadata)
        try:
            client, secret, registration_token = clients.register_dynamically(
                spec, request.credential, client_info["client_id"],
                client_metadata.get("id_token_signed_response_alg"))
        except ClientError as error:
            if error.reason == "invalid_initial_access_token":
                raise _invalid_token("The initial access token is used up.") from None
            raise _refused(error) from None
        request.issued = {"client_secret": secret, "registration_access_token": registration_token}
        return client

    def generate_client_registration_info(self, client, request):
        info = {**metadata_of(client), **_registration_info(client, request.issued["registration_access_token"])}
        if request.issued["client_secret"]:
            info["client_secret"] = request.issued["client_secret"]
        return info

    def get_server_metadata(self):
        return server_metadata()


class _RegistrationAccessToken:
    def __init__(self, client: Client, value: str) -> None:
        self.client = client
        self.value = value

    def check_client(self, client) -> bool:
        return client is self.client


class Configuration(ClientConfigurationEndpoint):
    """RFC 7592, for a dynamically registered client holding its registration access token."""

    def create_endpoint_request(self, request):
        return _json_request()

    def authenticate_token(self, request):
        value = _bearer(request)
        client_id = (flask_request.view_args or {}).get("client_id")
        client = clients.client_for_registration_token(client_id, value)
        if client is None:
            raise _invalid_token("The registration access token is missing or not valid for this client.")
        return _RegistrationAccessToken(client, value)

    def authenticate_client(self, request):
        return request.credential.client

    def revoke_access_token(self, *args):
        """Never reached: a token is only accepted for the client it belongs to."""

    def check_permission(self, client, request):
        return client.enabled  # a client disabled in the console cannot manage itself

    def extract_client_metadata(self, request):
        return _extract(request)

    def introspect_client(self, client):
        return metadata_of(client)

    def generate_client_registration_info(self, client, request):
        return _registration_info(client, request.credential.value)

    def update_client(self, client, client_metadata, request):
        try:
            return clients.update_dynamically(client, _spec(client_metadata),
                                              client_metadata.get("id_token_signed_response_alg"))
        except ClientError as error:
            raise _refused(error) from None

    def delete_client(self, client, request):
        clients.delete(client, actor=f"client:{client.client_id}")

    def get_server_metadata(self):
        return server_metadata()


def _server():
    return current_app.extensions["idp.oauth_server"]


@bp.post(REGISTRATION_PATH)
@csrf.exempt
def register():
    return no_store(_server().create_endpoint_response(Registration.ENDPOINT_NAME))


@bp.route(REGISTRATION_PATH + "/<client_id>", methods=["GET", "PUT", "DELETE"])
@csrf.exempt
def configure(client_id: str):
    return no_store(_server().create_endpoint_response(Configuration.ENDPOINT_NAME))


# -- logos uploaded in the console ------------------------------------------------------------

@bp.get("/clients/<client_id>/logo.png")
def logo(client_id: str):
    """Public (the consent page shows it); always a re-encoded PNG from outside the web root."""
    client = clients.find(client_id) if len(client_id) <= 64 else None
    path = clients.logo_path(client) if client is not None else None
    if path is None:
        abort(404)
    response = send_file(path, mimetype="image/png", max_age=300, conditional=True, etag=True)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def create_blueprint(app: Flask) -> Blueprint:
    """Registers both endpoints on the application's authorization server (created before)
    and returns the blueprint of their routes and of the logo route."""
    server = app.extensions["idp.oauth_server"]
    server.register_endpoint(Registration(claims_classes=[RegistrationClaims]))
    server.register_endpoint(Configuration(claims_classes=[RegistrationClaims]))
    return bp
