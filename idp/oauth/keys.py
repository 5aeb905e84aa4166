"""Signing keys: generated on first use, private part encrypted, rotated by `idp keys rotate`.

Each algorithm (RS256, ES256) has one active key. A rotated key is retired but stays in the
JWKS until every token it signed has expired (``publish_until``), so relying parties never
meet a signature they cannot check.
"""

from __future__ import annotations

import json
from datetime import timedelta

from flask import current_app
from joserfc.jwk import ECKey, KeySet, RSAKey, import_key

from idp.extensions import db, services
from idp.models.oauth import SigningKey

ALGORITHMS = ("RS256", "ES256")
_CACHE_SECONDS = 30
_cache: dict = {}


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
    """One active key per algorithm (first start). Workers starting together may each create
    one; they then all keep the oldest and retire the others (still published, so whatever
    they signed meanwhile verifies)."""
    active = {k.alg for k in db.session.execute(db.select(SigningKey).filter_by(active=True)).scalars()}
    missing = [alg for alg in ALGORITHMS if alg not in active]
    for alg in missing:
        _create(alg)
    if missing:
        db.session.commit()
        _keep_one_active_per_alg()
        invalidate()


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
    db.session.commit()


def rotate(algs=ALGORITHMS) -> list[str]:
    """Publish new keys; the old ones stay in the JWKS until their tokens have expired."""
    new = []
    for alg in algs:
        for old in db.session.execute(db.select(SigningKey).filter_by(alg=alg, active=True)).scalars():
            _retire(old)
        new.append(_create(alg).kid)
    db.session.commit()
    invalidate()
    return new


def invalidate() -> None:
    global _cache
    _cache = {}


def _load() -> dict:
    """Keys cached per process for a short while (other workers may rotate), and never past
    the moment a retired key must leave the JWKS — both on the provider's clock."""
    global _cache
    app = current_app._get_current_object()
    fresh = _fresh_cache(app)
    if fresh is not None:
        return fresh
    now_ts = services().clock.time()
    ensure_keys()
    now = services().clock.now()
    rows = db.session.execute(db.select(SigningKey).order_by(SigningKey.id)).scalars().all()
    published = [r for r in rows if r.active or (r.publish_until and r.publish_until > now)]
    private = {r.alg: r for r in rows if r.active}
    leaving = [r.publish_until.timestamp() for r in published if not r.active and r.publish_until]
    jwks = {"keys": [r.public_jwk for r in published]}
    data = {
        "until": min([now_ts + _CACHE_SECONDS, *leaving]),
        "app": app,
        "jwks": jwks,
        "jwks_json": json.dumps(jwks).encode(),
        "verify": KeySet.import_key_set(jwks),
        # Imported once: parsing and checking an RSA private key costs tens of milliseconds.
        "signing": {alg: (r.kid, import_key(json.loads(r.private_jwk))) for alg, r in private.items()},
    }
    _cache = data  # replaced whole, never emptied in place: readers hold a complete one
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


def verification_keys(kid: str | None = None) -> KeySet:
    """The published keys; a ``kid`` this process has not seen yet (another worker rotated or
    created keys a moment ago) reloads them once."""
    keyset = _load()["verify"]
    if kid is not None and all(key.kid != kid for key in keyset.keys):
        invalidate()
        keyset = _load()["verify"]
    return keyset


def signing_key(alg: str | None = None):
    """(kid, private key) of the active key for ``alg`` (default: the configured one)."""
    alg = alg or current_app.config["SIGNING_ALG"]
    return _load()["signing"][alg]
