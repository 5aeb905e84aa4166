"""Validating a logout token (OpenID Connect Back-Channel Logout 1.0, §2.6)."""

from __future__ import annotations

import threading
import time

from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

EVENT = "http://schemas.openid.net/event/backchannel-logout"
LEEWAY = 60  # seconds of clock skew tolerated


class InvalidLogoutToken(ValueError):
    pass


class SeenTokens:
    """jti values already accepted, kept until the token would have expired (no replay)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_time(self, jti: str, exp: float) -> bool:
        now = time.time()
        with self._lock:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
            if jti in self._seen:
                return False
            self._seen[jti] = exp + LEEWAY
            return True


def validate(token: str, *, issuer: str, client_id: str, jwks, algorithms, seen: SeenTokens) -> dict:
    """The claims of a valid logout token for this client, else ``InvalidLogoutToken``.

    ``jwks(force)`` returns the provider's key set (``force``: fetch it again, after a key
    rotation).
    """
    if not token or len(token) > 8192:
        raise InvalidLogoutToken("no logout_token")
    # 1-3: a signed JWT (never "none"), signature checked with the provider's published keys.
    try:
        try:
            decoded = jwt.decode(token, KeySet.import_key_set(jwks(False)), algorithms=algorithms)
        except InvalidKeyIdError:
            decoded = jwt.decode(token, KeySet.import_key_set(jwks(True)), algorithms=algorithms)
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidLogoutToken(f"signature: {exc}") from None
    if decoded.header.get("typ") != "logout+jwt":  # explicit typing: not an ID token
        raise InvalidLogoutToken("typ is not logout+jwt")
    claims = decoded.claims
    # 4: iss, aud, iat (and exp) as for an ID token.
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        iat={"essential": True},
        exp={"essential": True},
        jti={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise InvalidLogoutToken(f"claims: {exc}") from None
    # 5-7: sid and/or sub; the back-channel logout event; never a nonce.
    if not isinstance(claims.get("sid"), str) and not isinstance(claims.get("sub"), str):
        raise InvalidLogoutToken("neither sid nor sub")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(EVENT), dict):
        raise InvalidLogoutToken("no back-channel logout event")
    if "nonce" in claims:
        raise InvalidLogoutToken("a logout token has no nonce")
    # Optional (§2.6): refuse a token seen before.
    if not seen.first_time(claims["jti"], claims["exp"]):
        raise InvalidLogoutToken("jti seen before")
    return claims
