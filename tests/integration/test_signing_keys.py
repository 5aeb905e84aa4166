"""Signing keys when several workers start at once, and tokens signed by a key this process
has not loaded yet."""

from __future__ import annotations

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


def test_an_unknown_kid_reloads_the_published_keys_once(app):
    keys.ensure_keys()
    keys.public_jwks()  # this process has loaded its keys
    new = keys._create("ES256").kid  # another worker rotates
    db.session.commit()
    assert new in {k.kid for k in keys.verification_keys(new).keys}
