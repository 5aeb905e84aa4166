"""Signing keys: generated on first use, private part encrypted, rotated by `idp keys rotate`.

Each algorithm (RS256, ES256) has one active key. A rotated key is retired but stays in the
JWKS until every token it signed has expired (``publish_until``), so relying parties never
meet a signature they cannot check.

Every JWT the provider accepts back (access tokens at userinfo, introspection and revocation;
``id_token_hint`` at the authorization and end-session endpoints) is verified by ``decode``
here, and nowhere else: one place decides which key and which algorithm may check a token.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from datetime import timedelta

from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey, import_key
from sqlalchemy import event
from sqlalchemy.orm import Session

from idp.extensions import db, services
from idp.models.oauth import SigningKey

ALGORITHMS = ("RS256", "ES256")
_CACHE_SECONDS = 30
# A token naming a kid this process has not loaded reloads the keys only when the last load is
# at least this old. Such a kid is normally a key another worker or `idp keys rotate` created a
# moment ago; anyone can also send random ones, and each reload is two database queries and a
# key-set import: without this bound a flood of random kids was a flood of reloads. Five
# seconds bounds that to one reload per worker per five seconds, and a token of a brand-new key
# waits at most that long in a worker that happened to reload just before the key appeared.
UNKNOWN_KID_RELOAD_SECONDS = 5
_cache: dict = {}
_reload_lock = threading.Lock()
# Imported keys by kid, kept across reloads: a reload re-reads the rows but never imports a
# key it has imported before (an RSA private key costs tens of milliseconds to check).
_imported_public: dict[str, object] = {}
_imported_private: dict[str, object] = {}

# Our kids are RFC 7638 thumbprints (base64url, 43 characters); anything else is refused
# before any look-up, so a kid never reaches a query, a path or a log line unchecked.
_KID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Header parameters that name or carry a key (RFC 7515 §4.1.2–4.1.7) or demand extensions we
# do not implement (``crit``, §4.1.11). The provider never issues them; a token that has one
# is someone's attempt to choose the key it is checked with.
_FORBIDDEN_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "crit"})
MAX_TOKEN_LENGTH = 8192


def _generate(alg: str):
    if alg == "RS256":
        return RSAKey.generate_key(2048, auto_kid=True, private=True)
    if alg == "ES256":
        return ECKey.generate_key("P-256", auto_kid=True, private=True)
    raise ValueError(f"unsupported signing algorithm {alg!r}")


def _create(alg: str) -> SigningKey:
    key = _generate(alg)
    public = dict(key.as_dict(private=False), alg=alg, use="sig")
    row = SigningKey(kid=key.kid, alg=alg, private_jwk=json.dumps(key.as_dict(private=True)),
                     public_jwk=public, active=True)
    db.session.add(row)
    return row


def ensure_keys() -> None:
    """One active key per algorithm (first start: `idp serve` creates them, and commits, before
    its workers start). Workers starting together may each create one; they then all keep the
    oldest and retire the others (still published, so whatever they signed meanwhile verifies).
    Created within a request, the keys are committed with it; a rollback drops them from the
    cache too."""
    active = {k.alg for k in db.session.execute(db.select(SigningKey).filter_by(active=True)).scalars()}
    missing = [alg for alg in ALGORITHMS if alg not in active]
    for alg in missing:
        _create(alg)
    if missing:
        db.session.flush()
        _keep_one_active_per_alg()
        _written_in(db.session())


def _retire(row: SigningKey) -> None:
    cfg = current_app.config
    now = services().clock.now()
    row.active = False
    row.retired_at = now
    row.publish_until = now + timedelta(seconds=max(cfg["ACCESS_TOKEN_TTL"], cfg["ID_TOKEN_TTL"]) + 300)


def _keep_one_active_per_alg() -> None:
    rows = db.session.execute(
        db.select(SigningKey).filter_by(active=True).order_by(SigningKey.id)).scalars().all()
    seen = set()
    for row in rows:
        if row.alg in seen:
            _retire(row)
        seen.add(row.alg)
    db.session.flush()


def rotate(algs=ALGORITHMS) -> list[str]:
    """Publish new keys; the old ones stay in the JWKS until their tokens have expired."""
    new = []
    for alg in algs:
        for old in db.session.execute(db.select(SigningKey).filter_by(alg=alg, active=True)).scalars():
            _retire(old)
        new.append(_create(alg).kid)
    db.session.flush()
    _written_in(db.session())
    return new


_WRITTEN = "idp.signing_keys_written"


def _written_in(session: Session) -> None:
    """The cache is loaded again now, with what this unit wrote; a rollback takes the keys away
    and the cache forgets them then too (a commit keeps them: other processes reload)."""
    invalidate()
    session.info[_WRITTEN] = True
    for name, listener in (("after_commit", _committed), ("after_soft_rollback", _rolled_back)):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


def _committed(session: Session) -> None:
    session.info.pop(_WRITTEN, None)


def _rolled_back(session: Session, previous_transaction) -> None:
    if session.info.pop(_WRITTEN, False):
        invalidate()


def invalidate() -> None:
    global _cache
    _cache = {}


def _public_key(row: SigningKey):
    key = _imported_public.get(row.kid)
    if key is None:
        key = _imported_public[row.kid] = import_key(row.public_jwk)
    return key


def _private_key(row: SigningKey):
    key = _imported_private.get(row.kid)
    if key is None:
        key = _imported_private[row.kid] = import_key(json.loads(row.private_jwk))
    return key


def _load() -> dict:
    """Keys cached per process for a short while (other workers may rotate), and never past
    the moment a retired key must leave the JWKS — both on the provider's clock."""
    app = current_app._get_current_object()
    fresh = _fresh_cache(app)
    if fresh is not None:
        return fresh
    return _reload(app)


def _reload(app) -> dict:
    global _cache
    now_ts = services().clock.time()
    ensure_keys()
    now = services().clock.now()
    rows = db.session.execute(db.select(SigningKey).order_by(SigningKey.id)).scalars().all()
    published = [r for r in rows if r.active or (r.publish_until and r.publish_until > now)]
    private = {r.alg: r for r in rows if r.active}
    leaving = [r.publish_until.timestamp() for r in published if not r.active and r.publish_until]
    jwks = {"keys": [r.public_jwk for r in published]}
    previous = _cache
    if previous and previous["app"] is app and previous["jwks"] == jwks:
        # The same keys: the same key set object, so what was verified against it still counts
        # (idp.oauth.server._verified).
        keyset, by_kid = previous["verify"], previous["by_kid"]
    else:
        by_kid = {r.kid: (r.alg, _public_key(r)) for r in published}
        keyset = KeySet([key for _, key in by_kid.values()])
    data = {
        "until": min([now_ts + _CACHE_SECONDS, *leaving]),
        "loaded_at": now_ts,
        "app": app,
        "jwks": jwks,
        "jwks_json": json.dumps(jwks).encode(),
        "verify": keyset,
        "by_kid": by_kid,
        "signing": {alg: (r.kid, _private_key(r)) for alg, r in private.items()},
    }
    _cache = data  # replaced whole, never emptied in place: readers hold a complete one
    stored = {r.kid for r in rows}
    for imported in (_imported_public, _imported_private):  # a key removed by hand leaves memory too
        # list(): one copy taken at once; another thread may import a key into it meanwhile.
        for kid in [kid for kid in list(imported) if kid not in stored]:
            imported.pop(kid, None)
    return data


def public_jwks() -> dict:
    return _load()["jwks"]


def _fresh_cache(app) -> dict | None:
    """The key cache when it was filled for ``app`` and has not run out (no context needed)."""
    data = _cache
    if data and data["app"] is app and data["until"] > app.extensions["idp.services"].clock.time():
        return data
    return None


def cached_jwks_json(app) -> bytes | None:
    """The JWKS bytes of ``app`` while its key cache is fresh, else None."""
    data = _fresh_cache(app)
    return data["jwks_json"] if data is not None else None


def public_jwks_json() -> bytes:
    """The JWKS document, encoded once per key-cache period (it is served on every RP's start)."""
    return _load()["jwks_json"]


def verification_keys() -> KeySet:
    """The published public keys (the same object until they change)."""
    return _load()["verify"]


def _key_for(kid: str, alg: str):
    """(key set, the published public key ``kid`` for ``alg`` or None). A kid this process has
    not loaded reloads the keys, at most once per UNKNOWN_KID_RELOAD_SECONDS."""
    data = _load()
    found = data["by_kid"].get(kid)
    if found is None:
        app = data["app"]
        with _reload_lock:  # threads meeting unknown kids together reload once between them
            current = _cache  # one read: another thread may replace or empty it meanwhile
            data = current if current and current["app"] is app else data
            if services().clock.time() - data["loaded_at"] >= UNKNOWN_KID_RELOAD_SECONDS:
                data = _reload(app)
        found = data["by_kid"].get(kid)
    if found is None or found[0] != alg:
        return data["verify"], None
    return data["verify"], found[1]


class InvalidToken(Exception):
    """Not a JWT this provider signed (one reason for all: the caller answers invalid_token)."""


def _header(token: str) -> dict:
    try:
        segment = token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError, UnicodeDecodeError):
        raise InvalidToken("unreadable header") from None
    if not isinstance(header, dict):
        raise InvalidToken("unreadable header")
    return header


def decode(token: str):
    """``decode_against(token)`` without the key set."""
    return decode_against(token)[0]


def decode_against(token: str):
    """(the token decoded, the key set it was checked against), or InvalidToken.

    The header and claims of a JWT signed by one of the published keys, else InvalidToken.

    The header only selects among our keys: its ``alg`` must be one we sign with (never
    ``none``, never HS256 keyed by a public key: RFC 8725 §2.1, §3.1) and match the key its
    ``kid`` names; a header that names or carries a key (``jku``, ``jwk``, ``x5u``, ``x5c``)
    is refused (RFC 8725 §3.10). Claims (expiry, issuer, type) are the caller's to check.
    """
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("not a compact JWS")
    header = _header(token)
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS or not isinstance(kid, str) or not _KID.fullmatch(kid) \
            or _FORBIDDEN_HEADERS.intersection(header):
        raise InvalidToken("header refused")
    keyset, key = _key_for(kid, alg)
    if key is None:
        raise InvalidToken("unknown key")
    try:
        decoded = jwt.decode(token, key, algorithms=[alg])
    except (JoseError, ValueError, TypeError) as error:
        raise InvalidToken("bad signature") from error
    if not isinstance(decoded.claims, dict):
        raise InvalidToken("no claims")
    return decoded, keyset


def id_token_hint_claims(token: str) -> dict:
    """The claims of an ID token this provider issued, given back as an ``id_token_hint`` (at
    the authorization endpoint, OIDC Core §3.1.2.1, and at logout, RP-Initiated Logout §2), or
    InvalidToken. Past its ``exp`` is accepted (the hint only names a user); an access token or
    a logout token, signed by the same keys, is not an ID token (``typ``)."""
    decoded = decode(token)
    claims = decoded.claims
    if (claims.get("iss") != current_app.config["ISSUER"] or decoded.header.get("typ") != "JWT"
            or not isinstance(claims.get("sub"), str) or not isinstance(claims.get("exp"), int)):
        raise InvalidToken("not an ID token of this provider")
    return dict(claims)


def signing_key(alg: str | None = None):
    """(kid, private key) of the active key for ``alg`` (default: the configured one)."""
    alg = alg or current_app.config["SIGNING_ALG"]
    return _load()["signing"][alg]
