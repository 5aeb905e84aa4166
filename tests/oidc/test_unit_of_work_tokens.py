"""The token endpoint's unit of work (idp.unit_of_work, idp.oauth.bare): a refused request
keeps what must outlive it — a replayed token's revocation and its audit event — and the
exchange of a code commits once."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from idp.extensions import db
from idp.models.oauth import RefreshToken
from tests.conftest import audit_events


@pytest.fixture
def confidential(make_client):
    return make_client(trusted=True)


def test_a_replayed_refresh_tokens_revocation_and_audit_survive_the_refusal(rp, confidential, person):
    client_id, secret = confidential
    tokens = rp.sign_in(client_id, secret)
    assert rp.refresh(client_id, secret, tokens["refresh_token"]).status_code == 200
    replay = rp.refresh(client_id, secret, tokens["refresh_token"])
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"
    assert [e.details["reason"] for e in audit_events("token_revoked")] == ["refresh_token_replayed"]
    db.session.expire_all()
    family = db.session.execute(db.select(RefreshToken)).scalars().all()
    assert len(family) == 2 and all(row.revoked_at is not None for row in family)


def test_a_refresh_refused_after_the_rotation_leaves_the_token_as_it_was(rp, confidential, person):
    client_id, secret = confidential
    tokens = rp.sign_in(client_id, secret, scope="openid")
    wider = rp.refresh(client_id, secret, tokens["refresh_token"], scope="openid profile")
    assert wider.status_code == 400 and wider.get_json()["error"] == "invalid_scope"
    assert rp.refresh(client_id, secret, tokens["refresh_token"]).status_code == 200


def test_a_code_exchange_commits_once(rp, confidential, person):
    client_id, secret = confidential
    code = rp.authorize(client_id).code
    commits = []

    def count(session):
        commits.append(session)

    event.listen(Session, "after_commit", count)
    try:
        db.session.commit()  # the test's own unit, before the request
        commits.clear()
        response = rp.redeem(client_id, secret, code)
    finally:
        event.remove(Session, "after_commit", count)
    assert response.status_code == 200, response.get_json()
    assert len(commits) == 1
