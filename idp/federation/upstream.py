"""This provider as a relying party of the national platform (an upstream OpenID Connect
provider), through Authlib's OAuth 2 client and joserfc (Authlib's JOSE).

Every call upstream (discovery, keys, the token request) goes through
``idp.security.outbound``: Authlib's client is given a session whose ``post`` is the outbound
fetcher's, and discovery and keys are fetched with its ``get``. Nothing here knows of the
browser session or of accounts: the caller keeps the pending request (``state``, ``nonce``,
the PKCE verifier) in the browser's server-side session and hands it back.

The checks (OIDC Core §3.1.3.7 and §3.1.2.7), each failure a stable reason code
(``UpstreamError.reason``):

- discovery's ``issuer`` is exactly the configured one (OIDC Discovery §4.3: ``issuer_mismatch``);
- the authorization response's ``state`` is the one this browser sent (``state_mismatch``), an
  ``error`` there is the upstream's refusal (``access_denied`` or ``upstream_error``), and its
  ``iss`` (RFC 9207), when sent, is the issuer (``issuer_mismatch``);
- the code is exchanged with the PKCE verifier (RFC 7636) and the client secret; a refusal
  is ``token_refused``;
- the ID token is signed by a key of the upstream's JWKS with an asymmetric algorithm it
  announces (never ``none``, never an HMAC: ``bad_signature``, ``unsupported_algorithm``); an
  unknown ``kid`` fetches the keys once more (rotation); a key in the token's own header
  (``jwk``, ``jku``, ``x5u``) is never used;
- ``iss``, ``aud`` (and ``azp``), ``exp``, ``iat``, ``nonce`` and ``at_hash`` are checked by
  Authlib's ``CodeIDToken`` against the provider's clock (``token_expired``,
  ``nonce_mismatch``, ``issuer_mismatch``, ``audience_mismatch``, ``invalid_id_token``);
- an upstream that does not answer in ``IDP_NATIONAL_TIMEOUT`` seconds, answers with a
  server error or nonsense is ``upstream_unavailable``.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from authlib.common.urls import url_encode
from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.claims import JWTClaims
from authlib.oauth2.client import OAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from idp.errors import Refused
from idp.security import outbound

# Asymmetric signatures only: an HMAC would be keyed with the client secret (and empty or
# public-key "secrets" are the algorithm-confusion class), ``none`` is no signature.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
LEEWAY = 60  # seconds of clock difference accepted on exp / iat
PURPOSE = "national_platform"
TOKEN_ENDPOINT_AUTH = "client_secret_basic"  # nosec B105  # a method's name (RFC 7591 §2), not a secret


class UpstreamError(Refused):
    """The national platform's sign-in did not give a usable identity. ``detail``: for the
    audit log and the operator (which claim, which HTTP status), never shown to the person."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, message=f"{reason}: {detail}" if detail else reason)
        self.detail = detail


@dataclass(frozen=True)
class Upstream:
    issuer: str
    client_id: str
    client_secret: str
    scopes: str
    timeout: float
    metadata_ttl: int
    verified_claim: str
    verified_values: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg) -> Upstream | None:
        """The configured upstream, or None when any of issuer, client id and secret is unset."""
        issuer = (cfg.get("NATIONAL_ISSUER") or "").rstrip("/")
        if not (issuer and cfg.get("NATIONAL_CLIENT_ID") and cfg.get("NATIONAL_CLIENT_SECRET")):
            return None
        return cls(issuer=issuer, client_id=cfg["NATIONAL_CLIENT_ID"], client_secret=cfg["NATIONAL_CLIENT_SECRET"],
                   scopes=cfg.get("NATIONAL_SCOPES") or "openid", timeout=float(cfg.get("NATIONAL_TIMEOUT") or 5.0),
                   metadata_ttl=int(cfg.get("NATIONAL_METADATA_TTL") or 3600),
                   verified_claim=cfg.get("NATIONAL_VERIFIED_CLAIM") or "",
                   verified_values=tuple((cfg.get("NATIONAL_VERIFIED_VALUES") or "").split()))


class _Answer:
    """What Authlib's client reads of an HTTP answer (``requests``' names)."""

    def __init__(self, response: outbound.Response) -> None:
        self.status_code = response.status
        self._body = response.body

    def json(self):
        return json.loads(self._body)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise UpstreamError("upstream_unavailable", f"HTTP {self.status_code}")


class OutboundSession:
    """The session Authlib's OAuth 2 client posts through: the outbound fetcher, nothing else
    (SSRF rules, pinned address, deadline, size cap, no redirects)."""

    def __init__(self, policy: outbound.Policy, timeout: float) -> None:
        self.policy = policy
        self.timeout = timeout

    def post(self, url, data=None, headers=None, auth=None, **_):
        headers = dict(headers or {})
        body = url_encode(list((data or {}).items()))
        if auth is not None:  # Authlib's ClientAuth: client_secret_basic adds the header
            url, headers, body = auth.prepare("POST", url, headers, body)
        try:
            answer = outbound.post(url, body.encode(), headers, policy=self.policy, timeout=self.timeout,
                                   purpose=PURPOSE)
        except (outbound.OutboundFailed, outbound.OutboundRefused) as failed:
            raise UpstreamError("upstream_unavailable", failed.reason) from failed
        return _Answer(answer)

    def close(self) -> None:
        pass


class Client:
    """One use of the upstream: discovery, the authorization URL, the code exchange, the ID
    token's and logout token's validation. ``cache`` is the ephemeral store (discovery and keys
    are kept ``metadata_ttl`` seconds); ``now`` the provider's clock."""

    def __init__(self, upstream: Upstream, policy: outbound.Policy, cache, clock) -> None:
        self.upstream = upstream
        self.policy = policy
        self.cache = cache
        self.clock = clock

    # -- discovery and keys -------------------------------------------------------------------

    def _get_json(self, url: str, headers: dict | None = None) -> dict:
        try:
            answer = outbound.get(url, {"Accept": "application/json", **(headers or {})}, policy=self.policy,
                                  timeout=self.upstream.timeout, purpose=PURPOSE)
        except (outbound.OutboundFailed, outbound.OutboundRefused) as failed:
            raise UpstreamError("upstream_unavailable", failed.reason) from failed
        if answer.status != 200:
            raise UpstreamError("upstream_unavailable", f"HTTP {answer.status} from {url}")
        try:
            data = json.loads(answer.body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamError("upstream_unavailable", f"no JSON object at {url}")
        return data

    def _cached(self, key: str, fetch, force: bool = False) -> dict:
        full = f"national:{key}"
        if not force:
            raw = self.cache.get(full)
            if raw is not None:
                return json.loads(raw)
        data = fetch()
        self.cache.set(full, json.dumps(data).encode(), self.upstream.metadata_ttl)
        return data

    def metadata(self) -> dict:
        def fetch() -> dict:
            data = self._get_json(self.upstream.issuer + "/.well-known/openid-configuration")
            if data.get("issuer") != self.upstream.issuer:  # OIDC Discovery §4.3
                raise UpstreamError("issuer_mismatch", f"discovery names {data.get('issuer')!r}")
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(data.get(name), str):
                    raise UpstreamError("upstream_unavailable", f"discovery lacks {name}")
            return data

        return self._cached("metadata", fetch)

    def key_set(self, force: bool = False) -> KeySet:
        data = self._cached("jwks", lambda: self._get_json(self.metadata()["jwks_uri"]), force=force)
        try:
            return KeySet.import_key_set(data)
        except (JoseError, ValueError, KeyError, TypeError) as bad:
            raise UpstreamError("upstream_unavailable", "unusable keys") from bad

    def _oauth_client(self, redirect_uri: str) -> OAuth2Client:
        return OAuth2Client(OutboundSession(self.policy, self.upstream.timeout), client_id=self.upstream.client_id,
                            client_secret=self.upstream.client_secret, scope=self.upstream.scopes,
                            redirect_uri=redirect_uri, code_challenge_method="S256",
                            token_endpoint_auth_method=TOKEN_ENDPOINT_AUTH)

    # -- the code flow ------------------------------------------------------------------------

    def authorization_request(self, redirect_uri: str) -> tuple[str, dict]:
        """The URL to send the browser to, and what the browser session must keep for the
        callback: ``state`` and ``nonce`` (fresh, 256 bits each) and the PKCE verifier."""
        pending = {"state": secrets.token_urlsafe(32), "nonce": secrets.token_urlsafe(32),
                   "code_verifier": secrets.token_urlsafe(48), "issued_at": int(self.clock.time())}
        url, _ = self._oauth_client(redirect_uri).create_authorization_url(
            self.metadata()["authorization_endpoint"], state=pending["state"],
            code_verifier=pending["code_verifier"], nonce=pending["nonce"])
        return url, pending

    def check_response(self, args, pending: dict | None) -> str:
        """The authorization response (OIDC Core §3.1.2.5/§3.1.2.6): the code, or why not."""
        if not pending or not secrets.compare_digest(str(args.get("state") or ""), pending["state"]):
            raise UpstreamError("state_mismatch")
        if "iss" in args and args.get("iss") != self.upstream.issuer:  # RFC 9207 mix-up defence
            raise UpstreamError("issuer_mismatch", "the response's iss")
        error = args.get("error")
        if error:
            raise UpstreamError("access_denied" if error == "access_denied" else "upstream_error", error[:100])
        code = args.get("code")
        if not code:
            raise UpstreamError("upstream_error", "no code")
        return code

    def exchange(self, code: str, pending: dict, redirect_uri: str) -> tuple[dict, str]:
        """Code → tokens (with the PKCE verifier), then the ID token validated: its claims and
        the raw ID token (kept for RP-initiated logout's ``id_token_hint``)."""
        client = self._oauth_client(redirect_uri)
        try:
            token = client.fetch_token(self.metadata()["token_endpoint"], grant_type="authorization_code",
                                       code=code, code_verifier=pending["code_verifier"])
        except OAuth2Error as refused:
            raise UpstreamError("token_refused", str(refused.error)[:100]) from refused
        except (ValueError, TypeError) as bad:
            raise UpstreamError("upstream_unavailable", "the token answer is not JSON") from bad
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise UpstreamError("invalid_id_token", "no ID token")
        claims = self.validate_id_token(id_token, pending["nonce"], token.get("access_token"))
        return {**self.userinfo(token.get("access_token"), claims["sub"]), **claims}, id_token

    def userinfo(self, access_token: str | None, sub: str) -> dict:
        """The claims of the granted scopes (OIDC Core §5.3); its ``sub`` must be the ID
        token's (§5.3.2), else nothing of it is used."""
        endpoint = self.metadata().get("userinfo_endpoint")
        if not access_token or not isinstance(endpoint, str):
            return {}
        info = self._get_json(endpoint, {"Authorization": f"Bearer {access_token}"})
        if info.get("sub") != sub:
            raise UpstreamError("invalid_id_token", "userinfo names another sub")
        return {k: v for k, v in info.items() if k not in ("iss", "aud", "sub", "sid", "nonce")}

    def _decode(self, value: str):
        announced = self.metadata().get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in announced if alg in ALGORITHMS]
        if not algorithms:
            raise UpstreamError("unsupported_algorithm")
        registry = JWSRegistry(algorithms=algorithms)
        try:
            try:
                return jwt.decode(value, self.key_set(), registry=registry)
            except InvalidKeyIdError:  # the upstream rotated its keys: fetch them once more
                return jwt.decode(value, self.key_set(force=True), registry=registry)
        except BadSignatureError as bad:
            raise UpstreamError("bad_signature") from bad
        except UnsupportedAlgorithmError as bad:
            raise UpstreamError("unsupported_algorithm") from bad
        except (JoseError, ValueError) as bad:
            raise UpstreamError("invalid_id_token", type(bad).__name__) from bad

    def validate_id_token(self, id_token: str, nonce: str, access_token: str | None) -> dict:
        token = self._decode(id_token)
        options = {"iss": {"essential": True, "value": self.upstream.issuer},
                   "aud": {"essential": True, "value": self.upstream.client_id},
                   "sub": {"essential": True}}
        params = {"nonce": nonce, "client_id": self.upstream.client_id}
        if access_token:
            params["access_token"] = access_token
        claims = CodeIDToken(token.claims, token.header, options, params)
        try:
            claims.validate(now=int(self.clock.time()), leeway=LEEWAY)
        except ExpiredTokenError as expired:
            raise UpstreamError("token_expired") from expired
        except ClaimError as bad:
            reason = {"nonce": "nonce_mismatch", "iss": "issuer_mismatch", "aud": "audience_mismatch",
                      "azp": "audience_mismatch", "exp": "token_expired"}.get(bad.claim, "invalid_id_token")
            raise UpstreamError(reason, bad.claim) from bad
        if not isinstance(claims.get("sub"), str) or not claims["sub"] or len(claims["sub"]) > 255:
            raise UpstreamError("invalid_id_token", "sub")
        if claims.get("iat", 0) > self.clock.time() + LEEWAY:
            raise UpstreamError("invalid_id_token", "iat in the future")
        return dict(claims)

    # -- logout -------------------------------------------------------------------------------

    def logout_url(self, id_token: str | None, post_logout_redirect_uri: str) -> str | None:
        """RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2), when the upstream
        announces an ``end_session_endpoint``."""
        try:
            endpoint = self.metadata().get("end_session_endpoint")
        except UpstreamError:
            return None
        if not isinstance(endpoint, str) or not endpoint:
            return None
        params = {"client_id": self.upstream.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        if id_token:
            params["id_token_hint"] = id_token
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)

    def validate_logout_token(self, value: str) -> dict:
        """OpenID Connect Back-Channel Logout 1.0 §2.6: signed by the upstream, for us, with the
        back-channel logout event, a ``sub`` or a ``sid``, and never a ``nonce``."""
        token = self._decode(value)
        options = {"iss": {"essential": True, "value": self.upstream.issuer},
                   "aud": {"essential": True, "value": self.upstream.client_id},
                   "iat": {"essential": True}}
        claims = JWTClaims(token.claims, token.header, options)
        try:
            claims.validate(now=int(self.clock.time()), leeway=LEEWAY)
        except ExpiredTokenError as expired:
            raise UpstreamError("token_expired") from expired
        except ClaimError as bad:
            raise UpstreamError("invalid_logout_token", bad.claim) from bad
        events = claims.get("events")
        if not isinstance(events, dict) or "http://schemas.openid.net/event/backchannel-logout" not in events:
            raise UpstreamError("invalid_logout_token", "events")
        if "nonce" in claims or not (claims.get("sub") or claims.get("sid")):
            raise UpstreamError("invalid_logout_token", "nonce or no sub/sid")
        return dict(claims)
