"""Signing keys when several workers start at once, and tokens signed by a key this process
has not loaded yet."""

from __future__ import annotations

import json
import sys
import threading

import pytest

from idp.extensions import db
from idp.models.oauth import SigningKey
from idp.oauth import keys


def _active(alg):
    return db.session.execute(db.select(SigningKey).filter_by(alg=alg, active=True)).scalars().all()


def test_keys_created_by_racing_workers_converge_on_the_oldest_and_the_others_stay_published(app):
    keys.ensure_keys()
    first = _active("RS256")[0].kid
    second = keys._create("RS256").kid  # a second worker's key, committed a moment later
    db.session.commit()
    keys._keep_one_active_per_alg()
    assert [k.kid for k in _active("RS256")] == [first]
    keys.invalidate()
    published = {k["kid"] for k in keys.public_jwks()["keys"]}
    assert {first, second} <= published


def _signed_by(row: SigningKey) -> str:
    from joserfc import jwt
    from joserfc.jwk import import_key

    return jwt.encode({"alg": row.alg, "kid": row.kid, "typ": "JWT"}, {"sub": "x"},
                      import_key(json.loads(row.private_jwk)), algorithms=[row.alg])


def test_a_kid_another_worker_created_verifies_once_the_reload_interval_has_passed(app, clock):
    keys.ensure_keys()
    keys.public_jwks()  # this process has loaded its keys
    row = keys._create("ES256")  # another worker rotates
    db.session.commit()
    token = _signed_by(row)
    with pytest.raises(keys.InvalidToken):  # loaded a moment ago: not reloaded for this kid yet
        keys.decode(token)
    clock.advance(keys.UNKNOWN_KID_RELOAD_SECONDS)
    assert keys.decode(token).claims == {"sub": "x"}
    assert row.kid in {k.kid for k in keys.verification_keys().keys}


def test_readers_never_see_a_half_reloaded_key_cache(app):
    """Every userinfo and introspection reads the key cache; a reload or an invalidation in
    another thread must not leave it empty under a reader (KeyError, a 500)."""
    keys.ensure_keys()
    db.session.commit()
    failures, stop = [], threading.Event()

    def read():
        with app.app_context():
            try:
                while not stop.is_set():
                    keys.verification_keys()
                    keys.signing_key("RS256")
            except Exception as error:  # noqa: BLE001 - any failure is the finding
                failures.append(error)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads change hands as often as they can: the race shows
    readers = [threading.Thread(target=read) for _ in range(4)]
    try:
        for reader in readers:
            reader.start()
        for _ in range(40):
            keys.invalidate()  # while the readers run through a fresh cache
            keys.verification_keys()
            stop.wait(0.002)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
        sys.setswitchinterval(interval)
    assert failures == []
