"""Authlib's authorization server, its grants and endpoints, wired to idp.oauth.storage.

Grant classes hold policy only: which client authentication methods, PKCE rules (S256,
required for public clients at the authorization endpoint already), rotation of refresh
tokens. Access tokens are JWTs per RFC 9068 with a unique ``jti`` each.
"""

from __future__ import annotations

import secrets
import threading

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Request as OAuth2RequestBase
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.rpinitiated import EndSessionEndpoint
from flask import current_app
from flask import request as flask_request
from joserfc import jwt

from idp.extensions import db, services
from idp.login.record import Authentication
from idp.models.accounts import ACTIVE
from idp.oauth import keys, storage
from idp.oauth.claims import id_token_claims

SECRET_METHODS = ["client_secret_basic", "client_secret_post"]
# What an access token and its introspection say of the sign-in (idp.login.record).
SIGN_IN_CLAIMS = ("account_type", "sid", "auth_time", "acr", "amr", "represents")


# -- tokens -----------------------------------------------------------------------------------

def sign(claims: dict, alg: str | None = None, typ: str | None = None) -> str:
    alg = alg or current_app.config["SIGNING_ALG"]
    kid, private = keys.signing_key(alg)
    header = {"alg": alg, "kid": kid, **({"typ": typ} if typ else {})}
    return jwt.encode(header, claims, private, algorithms=[alg])


def access_token(client, grant_type, user, scope) -> str:
    """RFC 9068 JWT access token; its ``jti`` is new, or the one its code recorded for it
    (``storage.take_code``). What it says of the user and the sign-in (``sub``,
    ``account_type``, ``sid``, ``auth_time``, ``acr``, ``amr``: RFC 9068 §2.2.1) comes from the
    grant's authentication record (``user.authentication``), and only from it."""
    now = int(services().clock.time())
    claims = {
        "iss": current_app.config["ISSUER"],
        "sub": user.sub if user else client.get_client_id(),
        "aud": client.get_client_id(),
        "client_id": client.get_client_id(),
        "iat": now,
        "exp": now + current_app.config["ACCESS_TOKEN_TTL"],
        "jti": getattr(user, "access_jti", None) or storage.new_jti(),
        "scope": scope or "",
    }
    if user is not None:
        claims.update(user.authentication.claims())
    return sign(claims, typ="at+jwt")


def verify_access_token(token: str) -> dict | None:
    """The claims of a valid, unrevoked access token of this provider whose account and client
    were not cut off since it was issued (disabled, locked, deleted), else None. Every check is
    a look-up in this process's memory once the revocation list is listening."""
    claims = decode_access_token(token)
    if claims is None or storage.access_jti_revoked(str(claims.get("jti"))):
        return None
    if storage.issued_before_cut_off(str(claims.get("sub")), str(claims.get("client_id")), claims.get("iat") or 0):
        return None
    represents = claims.get("represents")
    if represents is not None and storage.represents_ended(represents, claims.get("iat") or 0):
        return None  # issued while acting for a unit: its authorisation ended since (idp.delegations)
    return claims


# Access tokens whose signature, type and issuer this process has checked, with the key set
# they were checked against. A resource server asks about the same token again and again
# (introspection, userinfo); parsing and verifying it was a fifth of userinfo's CPU
# (bench/PROFILE.md). An entry counts only while that very key set is the current one (it is
# reloaded at least every 30 s and at once on a rotation, and stays the same object while the
# published keys do not change), and expiry and revocation are asked at every use.
_VERIFIED_MAX = 4096
_verified: dict[str, tuple[object, dict]] = {}
_verified_lock = threading.Lock()


def decode_access_token(token: str) -> dict | None:
    """The claims of an access token of this provider, signed, typed and unexpired, else None.
    Whether it was revoked is not asked here (``verify_access_token`` does)."""
    if not token or token.count(".") != 2 or len(token) > keys.MAX_TOKEN_LENGTH:
        return None
    keyset = keys.verification_keys()
    seen = _verified.get(token)
    if seen is not None and seen[0] is keyset:
        claims = seen[1]
    else:
        checked = _verified_claims(token)
        if checked is None:
            return None
        claims, keyset = checked
        with _verified_lock:
            if len(_verified) >= _VERIFIED_MAX:
                _verified.pop(next(iter(_verified)))
            _verified[token] = (keyset, claims)
    if claims["exp"] <= services().clock.time():
        return None
    return dict(claims)


def _verified_claims(token: str) -> tuple[dict, object] | None:
    """(claims, the key set they were checked against) of a signed access token, else None."""
    try:
        decoded, keyset = keys.decode_against(token)
    except keys.InvalidToken:
        return None
    claims = decoded.claims
    if (decoded.header.get("typ") != "at+jwt" or claims.get("iss") != current_app.config["ISSUER"]
            or not isinstance(claims.get("exp"), int)):
        return None
    return claims, keyset


def _expires_in(client, grant_type) -> int:
    return current_app.config["ACCESS_TOKEN_TTL"]


def _refresh_token(client, grant_type, user, scope) -> str:
    return secrets.token_urlsafe(32)


# -- grants -----------------------------------------------------------------------------------

class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [*SECRET_METHODS, "none"]

    def save_authorization_code(self, code, request):
        storage.save_code(code, request, request.user)

    def query_authorization_code(self, code, client):
        return storage.take_code(code, client)

    def delete_authorization_code(self, authorization_code):
        """Already spent atomically in ``query_authorization_code``."""

    def authenticate_user(self, authorization_code):
        return authorization_code.subject


class PublicClientsUseS256(CodeChallenge):
    """PKCE: S256 only; a public client without a challenge is refused at the authorization
    endpoint (not only later at the token endpoint)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if grant.request.client.is_public and not data.get("code_challenge"):
            raise InvalidRequestError("Public clients must use PKCE with S256.", redirect_uri=redirect_uri)
        if data.get("code_challenge") and data.get("code_challenge_method", "plain") != "S256":
            raise InvalidRequestError("Only 'code_challenge_method=S256' is supported.",
                                      redirect_uri=redirect_uri)
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code):
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code):
        return authorization_code.code_challenge_method


class IdpOpenIDCode(OpenIDCode):
    """ID tokens (OIDC Core §3.1.3.6): signed with the client's or the default algorithm,
    ``kid`` in the header, ``sid`` for back-channel logout, times from the provider's clock."""

    def exists_nonce(self, nonce, request):
        return storage.nonce_used(request.payload.client_id, nonce)

    def get_client_algorithm(self, client):
        # Only algorithms we hold keys for: never "none", never something unknown.
        if client.id_token_signed_response_alg in keys.ALGORITHMS:
            return client.id_token_signed_response_alg
        return current_app.config["SIGNING_ALG"]

    def resolve_client_private_key(self, client):
        return keys.signing_key(self.get_client_algorithm(client))[1]

    def get_encode_header(self, client):
        alg = self.get_client_algorithm(client)
        return {"alg": alg, "kid": keys.signing_key(alg)[0], "typ": "JWT"}

    def get_client_claims(self, client):
        now = int(services().clock.time())
        return {
            "iss": current_app.config["ISSUER"],
            "aud": [client.get_client_id()],
            "iat": now,
            "exp": now + current_app.config["ID_TOKEN_TTL"],
        }

    def get_authorization_code_claims(self, authorization_code):
        """OIDC Core §2: ``auth_time``, ``acr``, ``amr`` and ``sid`` of the sign-in, from the
        record the code carries (Authlib's getters read the same record)."""
        claims = super().get_authorization_code_claims(authorization_code)
        claims.update(authorization_code.subject.authentication.claims())
        return claims

    def generate_user_info(self, user, scope):
        # OIDC Core §5.4: with an access token issued, scope claims come from userinfo; the
        # ID token says who and which kind of account (INTERFACES.md: account_type always),
        # from the grant's authentication record.
        return id_token_claims(user.authentication)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [*SECRET_METHODS, "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def validate_token_request(self):
        """A refresh token is rotated as it is found; a request refused after that (a scope
        it does not cover) leaves it as it was. A replayed one's revocation stays: the token
        endpoint commits its unit of work also when it refuses (idp.oauth.bare)."""
        self._rotated = False
        try:
            super().validate_token_request()
        except OAuth2Error:
            if self._rotated:
                db.session.rollback()
            raise

    def authenticate_refresh_token(self, refresh_token):
        row = storage.spend_refresh_token(refresh_token, self.request.client)
        self._rotated = row is not None
        return row

    def authenticate_user(self, refresh_token):
        return refresh_token.subject

    def revoke_old_credential(self, refresh_token):
        """Already rotated, atomically, by ``authenticate_refresh_token``."""


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_METHODS


# -- endpoints --------------------------------------------------------------------------------

class AccessTokenRecord:
    """A verified, unrevoked JWT access token, shaped like Authlib's TokenMixin for RFC 7662
    and 7009. Made only from what ``verify_access_token`` returned."""

    def __init__(self, claims: dict) -> None:
        self.claims = claims

    def is_expired(self) -> bool:
        return self.claims["exp"] <= services().clock.time()

    def is_revoked(self) -> bool:
        """Never: ``verify_access_token`` has just checked the revocation list."""
        return False

    def check_client(self, client) -> bool:
        return self.claims.get("client_id") == client.get_client_id()

    def get_scope(self) -> str:
        return self.claims.get("scope", "")


def _token_record(token: str, hint: str | None):
    """An access token (verified JWT) or a refresh-token row (RFC 7662 / 7009 look-up)."""
    if hint != "refresh_token":
        claims = verify_access_token(token)
        if claims is not None:
            return AccessTokenRecord(claims)
    if token.count(".") != 2:
        row = storage.db.session.execute(
            storage.db.select(storage.RefreshToken).filter_by(token_hash=storage.token_hash(token))
        ).scalar_one_or_none()
        if row is None or storage.query_client(row.client_id) is None:
            return None
        account = storage.account_by_id(row.account_id)
        if account is None or account.status != ACTIVE or not storage.delegation_holds(row):
            return None
        return row
    return None


class UnsupportedTokenTypeError(OAuth2Error):
    """RFC 7009 §2.2.1: an error response, so 400 (Authlib's is a 401 challenge)."""

    error = "unsupported_token_type"
    status_code = 400


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = SECRET_METHODS

    def check_params(self, request, client):
        """RFC 7662 §2.1: a hint the server does not know is no error; the search extends to
        every type of token (``_token_record``)."""
        if "token" not in request.form:
            raise InvalidRequestError()

    def query_token(self, token, token_type_hint):
        return _token_record(token, token_type_hint)

    def introspect_token(self, token):
        if isinstance(token, AccessTokenRecord):
            data = {k: token.claims[k] for k in ("scope", "client_id", "sub", "exp", "iat", "iss", "jti",
                                                 "aud", *SIGN_IN_CLAIMS)
                    if k in token.claims}
            return {"active": True, "token_type": "Bearer", **data}  # nosec B105  # a token type name (RFC 7662), not a secret
        # A refresh token: the sign-in's claims from the family's record.
        return {
            "active": True, "token_type": "refresh_token", "scope": token.scope,  # nosec B105  # a token type name (RFC 7662), not a secret
            "client_id": token.client_id, **Authentication.from_json(token.authentication).claims(),
            "exp": int(token.expires_at.timestamp()), "iss": current_app.config["ISSUER"],
        }

    def check_permission(self, token, client, request):
        # Any authenticated client may introspect: resource servers are clients too.
        return True


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = [*SECRET_METHODS, "none"]

    def check_params(self, request, client):
        if "token" not in request.form:
            raise InvalidRequestError()
        hint = request.form.get("token_type_hint")
        if hint and hint not in self.SUPPORTED_TOKEN_TYPES:
            raise UnsupportedTokenTypeError()

    def query_token(self, token, token_type_hint):
        return _token_record(token, token_type_hint)

    def revoke_token(self, token, request):
        """Authlib has checked that the token belongs to the requesting client."""
        client_id = request.client.get_client_id()
        if isinstance(token, AccessTokenRecord):
            storage.revoke_access_jti(token.claims["jti"], token.claims["exp"] - services().clock.time())
        else:
            # RFC 7009 §2.1: revoking a refresh token also ends the access tokens of its grant.
            storage.revoke_family(token.family_id)
        from idp import signals

        signals.token_revoked.send(current_app._get_current_object(), subject=client_id,
                                   details={"reason": "revocation_endpoint"})


class EndSession(EndSessionEndpoint):
    """RP-initiated logout; ``end_session`` ends the SSO session (and so notifies the other
    clients by back-channel logout)."""

    def get_server_jwks(self):
        return keys.verification_keys()

    def resolve_client_from_id_token_claims(self, id_token_claims):
        # Our ID tokens carry ``aud`` as a one-element list; Authlib only resolves a string.
        aud = id_token_claims.get("aud")
        if isinstance(aud, list) and len(aud) == 1:
            aud = aud[0]
        return self.server.query_client(aud) if isinstance(aud, str) else None

    def _validate_id_token_hint(self, id_token_hint):
        """RP-Initiated Logout §2: the OP MUST validate that it issued the ID token, and SHOULD
        accept it past its ``exp`` (keys.id_token_hint_claims)."""
        try:
            return keys.id_token_hint_claims(id_token_hint)
        except keys.InvalidToken:
            raise InvalidRequestError("'id_token_hint' is not an ID token of this provider") from None

    @staticmethod
    def confirmation_needed(end_session_request, account, sid: str | None) -> str | None:
        """Why the signed-in user must confirm this logout (a reason code for the page), or
        None when the hint proves that the user's own relying party asks (§2: the OP asks the
        user whether to log out; §6: a request not proven so is a possible forgery). It proves
        that when it names the signed-in ``account``, its client is still enabled, and it is
        either unexpired or from this very browser session ``sid`` (an expired one of another
        session could be a token that leaked from somewhere)."""
        claims = end_session_request.id_token_claims
        client = end_session_request.client
        if not claims:
            return "logout_confirm"
        if account is None or claims.get("sub") != account.sub:
            from idp import signals

            signals.request_refused.send(
                current_app._get_current_object(), subject=account.login_name if account else None,
                outcome="refused", details={"reason": "logout_hint_of_another_user",
                                            "client_id": client.client_id if client else None})
            return "logout_hint_of_another_user"
        if client is None:
            return "logout_confirm"
        if claims["exp"] > services().clock.time() or (sid is not None and claims.get("sid") == sid):
            return None
        return "logout_confirm"

    def end_session(self, end_session_request):
        from idp.oauth.sessions import end_current_session

        end_current_session(reason="rp_initiated")


class Issuer(IssuerParameter):
    def get_issuer(self):
        return current_app.config["ISSUER"]


class OAuth2Request(FlaskOAuth2Request):
    """Authlib's request over Werkzeug's, given its URL without the query: Authlib reads only
    its scheme and host (is the transport secure?). Werkzeug's
    ``request.url`` builds an IRI with the query, which cost 12 µs of each token and
    introspection request's 300 (bench/PROFILE.md)."""

    def __init__(self, request) -> None:
        OAuth2RequestBase.__init__(self, method=request.method, headers=request.headers,
                                   uri=f"{request.scheme}://{request.host}{request.root_path}{request.path}")
        self._request = request
        self.payload = FlaskOAuth2Payload(request)


class Server(AuthorizationServer):
    def create_oauth2_request(self, request):
        """The request given (idp.oauth.bare makes its own, outside Flask's request context;
        the authorization endpoint gives an Authlib request made of the request's parameters,
        idp.oauth.views.AuthorizationRequest), else Flask's current one."""
        if isinstance(request, OAuth2RequestBase):
            return request
        return OAuth2Request(request if request is not None else flask_request)


def create_server(app) -> AuthorizationServer:
    server = Server()
    server.init_app(app, query_client=storage.query_client, save_token=storage.save_token)
    server.register_token_generator(
        "default", BearerTokenGenerator(access_token, _refresh_token, _expires_in)
    )
    server.register_grant(AuthorizationCodeGrant, [IdpOpenIDCode(require_nonce=False), PublicClientsUseS256()])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(Introspection)
    server.register_endpoint(Revocation)
    server.register_endpoint(EndSession)
    server.register_extension(Issuer())
    return server
