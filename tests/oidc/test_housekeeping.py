"""Housekeeping (idp.ops.housekeeping, `idp purge`, `idp worker`): rows older than the retention
go, younger ones stay, and nothing a live credential's replay detection reads goes with them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from idp.cli import main as idp_cli
from idp.extensions import db, services
from idp.models.audit import AuditEvent
from idp.models.delegations import Delegation, DelegatedSignIn
from idp.models.oauth import AuthorizationCode, Job, RefreshToken, SsoSession
from idp.ops.housekeeping import purge_expired
from tests.conftest import audit_events
from tests.oidc.conftest import REDIRECT_URI  # noqa: F401

DAY = 86400


@pytest.fixture
def confidential(make_client):
    return make_client(trusted=True, scopes=["openid", "offline_access"])


def count(model) -> int:
    db.session.expire_all()
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def purge(**kwargs) -> dict:
    counts = purge_expired(services().clock.now(), **kwargs)
    db.session.commit()
    return counts


def error_of(response) -> str:
    return (response.get_json() or {}).get("error", "")


# --- authorization codes --------------------------------------------------------------------


def test_a_code_goes_once_expired_longer_than_the_retention(app, rp, confidential, person, clock):
    rp.authorize(confidential[0])
    retention, ttl = app.config["PURGE_RETENTION"], app.config["CODE_TTL"]
    clock.advance(ttl + retention - 10)
    assert purge()["authorization_codes"] == 0 and count(AuthorizationCode) == 1
    clock.advance(20)
    assert purge()["authorization_codes"] == 1 and count(AuthorizationCode) == 0


def test_a_used_code_inside_the_window_is_kept_and_its_replay_still_revokes(app, rp, confidential, person, clock):
    client_id, secret = confidential
    flow = rp.authorize(client_id)
    tokens = rp.redeem(client_id, secret, flow.code).get_json()
    clock.advance(app.config["CODE_TTL"] + 60)  # the code has expired, not yet for the retention
    assert purge()["authorization_codes"] == 0
    again = rp.redeem(client_id, secret, flow.code)
    assert again.status_code == 400 and error_of(again) == "invalid_grant"
    assert rp.userinfo(tokens["access_token"]).status_code == 401
    assert error_of(rp.refresh(client_id, secret, tokens["refresh_token"])) == "invalid_grant"
    assert "code_replayed" in [event.details["reason"] for event in audit_events("token_revoked")]


# --- refresh tokens -------------------------------------------------------------------------


def test_a_family_with_a_live_member_keeps_its_rotated_members_and_replay_still_revokes(
        app, rp, confidential, person, clock):
    client_id, secret = confidential
    ttl, retention = app.config["REFRESH_TOKEN_TTL"], app.config["PURGE_RETENTION"]
    first = rp.sign_in(client_id, secret)
    clock.advance(ttl - DAY)
    second = rp.refresh(client_id, secret, first["refresh_token"]).get_json()
    assert "refresh_token" in second
    clock.advance(DAY + retention + DAY)  # the first expired longer ago than the retention
    assert purge()["refresh_tokens"] == 0 and count(RefreshToken) == 2
    replay = rp.refresh(client_id, secret, first["refresh_token"])
    assert replay.status_code == 400 and error_of(replay) == "invalid_grant"
    assert error_of(rp.refresh(client_id, secret, second["refresh_token"])) == "invalid_grant"
    assert [event.details["reason"] for event in audit_events("token_revoked")][:1] == ["refresh_token_replayed"]


def test_a_family_goes_whole_once_its_youngest_member_expired_longer_than_the_retention(
        app, rp, confidential, person, clock):
    client_id, secret = confidential
    ttl, retention = app.config["REFRESH_TOKEN_TTL"], app.config["PURGE_RETENTION"]
    first = rp.sign_in(client_id, secret)
    clock.advance(DAY)
    rp.refresh(client_id, secret, first["refresh_token"])
    clock.advance(ttl + retention - 10)  # the first is past the retention, the second not yet
    assert purge()["refresh_tokens"] == 0 and count(RefreshToken) == 2
    clock.advance(20)
    assert purge()["refresh_tokens"] == 2 and count(RefreshToken) == 0


# --- SSO sessions and their delegated sign-ins ----------------------------------------------


def _session(person, sid: str, *, ended_after=None, session_key=None) -> SsoSession:
    now = services().clock.now()
    row = SsoSession(sid=sid, account_id=person.id, client_ids=[], created_at=now, last_seen_at=now,
                     session_key=session_key,
                     ended_at=None if ended_after is None else now + timedelta(seconds=ended_after))
    db.session.add(row)
    db.session.flush()
    return row


def _delegated_sign_in(person, sid: str) -> None:
    now = services().clock.now()
    delegation = Delegation(unit_uscc="91110000000000000X", person_id=person.id, role="agent", starts_at=now)
    db.session.add(delegation)
    db.session.flush()
    db.session.add(DelegatedSignIn(delegation_id=delegation.id, sid=sid, client_id="c", account_id=person.id))
    db.session.flush()


def test_an_ended_session_goes_after_the_retention_with_its_delegated_sign_ins(app, person, clock):
    _session(person, "ended", ended_after=0)
    _delegated_sign_in(person, "ended")
    db.session.commit()
    clock.advance(app.config["PURGE_RETENTION"] - 10)
    assert purge()["sso_sessions"] == 0
    clock.advance(20)
    counts = purge()
    assert counts["sso_sessions"] == 1 and counts["delegated_sign_ins"] == 1
    assert count(SsoSession) == 0 and count(DelegatedSignIn) == 0 and count(Delegation) == 1


def test_an_idle_session_stays_while_its_browser_session_lives_or_a_token_of_it_can_be_used(app, person, clock):
    store = services().store
    store.set("session:alive", b"{}", 30 * DAY)
    _session(person, "in-use", session_key="alive")
    _session(person, "with-token", session_key="gone")
    _session(person, "forgotten", session_key="gone-too")
    db.session.add(RefreshToken(token_hash="h" * 64, family_id="f", client_id="c", account_id=person.id,
                                sid="with-token", authentication={},
                                expires_at=services().clock.now() + timedelta(days=20)))
    db.session.commit()
    idle = app.config["SESSION_LIFETIME"] + app.config["PURGE_RETENTION"]
    clock.advance(idle - 10)
    assert purge()["sso_sessions"] == 0
    clock.advance(20)
    assert purge()["sso_sessions"] == 1
    assert sorted(db.session.execute(select(SsoSession.sid)).scalars()) == ["in-use", "with-token"]


# --- jobs -----------------------------------------------------------------------------------


def test_done_jobs_go_after_the_retention_and_failed_ones_after_the_jobs_retention(app, clock):
    now = services().clock.now()
    db.session.add_all([Job(kind="k", payload={}, done_at=now), Job(kind="k", payload={}, failed_at=now),
                        Job(kind="k", payload={})])
    db.session.commit()
    clock.advance(app.config["PURGE_RETENTION"] + 1)
    assert purge()["jobs"] == 1 and count(Job) == 2
    clock.advance(app.config["PURGE_JOBS_RETENTION"])
    assert purge()["jobs"] == 1 and count(Job) == 1  # the waiting job stays


# --- dry run, audit, CLI, worker -----------------------------------------------------------


def test_a_dry_run_counts_and_deletes_nothing(app, rp, confidential, person, clock):
    rp.sign_in(*confidential)
    clock.advance(app.config["REFRESH_TOKEN_TTL"] + app.config["PURGE_RETENTION"] + 1)
    counts = purge(dry_run=True)
    assert counts["authorization_codes"] == 1 and counts["refresh_tokens"] == 1
    assert count(AuthorizationCode) == 1 and count(RefreshToken) == 1
    assert audit_events("rows_purged") == []


def test_a_purge_is_audited_once_with_its_counts_and_keeps_the_audit_log(app, rp, confidential, person, clock):
    rp.authorize(confidential[0])
    events = count(AuditEvent)
    clock.advance(app.config["PURGE_RETENTION"] + 365 * DAY)
    purge()
    assert count(AuditEvent) == events + 1
    (event,) = audit_events("rows_purged")
    assert event.details["deleted"]["authorization_codes"] == 1 and event.actor == "cli"


def test_the_cli_prints_the_counts_as_one_json_line(app, rp, confidential, person, clock):
    rp.authorize(confidential[0])
    clock.advance(app.config["PURGE_RETENTION"] + DAY)
    dry = app.test_cli_runner().invoke(idp_cli, ["purge", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output.strip().splitlines()[-1])["authorization_codes"] == 1
    assert count(AuthorizationCode) == 1
    result = app.test_cli_runner().invoke(idp_cli, ["purge", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1]) == {
        # the sign-in's session too: its browser session expired idle, no token of it is usable
        "authorization_codes": 1, "refresh_tokens": 0, "sso_sessions": 1, "delegated_sign_ins": 0, "jobs": 0}
    assert count(AuthorizationCode) == 0


def test_the_worker_purges_at_most_once_per_interval(app, clock):
    def worker_once():
        result = app.test_cli_runner().invoke(idp_cli, ["worker", "--once"])
        assert result.exit_code == 0, result.output

    interval = app.config["PURGE_INTERVAL"]
    worker_once()
    worker_once()
    assert len(audit_events("rows_purged")) == 1
    clock.advance(interval - 1)
    worker_once()
    assert len(audit_events("rows_purged")) == 1
    clock.advance(2)
    worker_once()
    assert [event.actor for event in audit_events("rows_purged")] == ["worker", "worker"]


def test_the_worker_never_purges_with_an_interval_of_zero(app, clock):
    app.config["PURGE_INTERVAL"] = 0
    assert app.test_cli_runner().invoke(idp_cli, ["worker", "--once"]).exit_code == 0
    assert audit_events("rows_purged") == []
