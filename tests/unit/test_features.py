"""Each feature registers itself from ``create_app``; building the app again (tests, the CLI
and the workers do) subscribes nothing twice, so no event is audited or sent twice."""

from __future__ import annotations

import weakref
from collections import Counter

from sqlalchemy.orm import Session

from idp import create_app, jobs, notices, signals
from idp.oauth import backchannel
from idp.verification import service as verification

SESSION_EVENTS = ("before_flush", "after_flush_postexec", "after_commit", "after_soft_rollback")


def session_listeners(name: str) -> Counter:
    return Counter(getattr(Session.dispatch, name)._clslevel[Session])


def test_building_the_app_three_times_registers_each_listener_once(app, settings, clock):
    before = {name: session_listeners(name) for name in SESSION_EVENTS}
    for _ in range(2):
        create_app(settings, clock=clock)
    for name in SESSION_EVENTS:
        assert session_listeners(name) == before[name]
        assert all(count == 1 for count in before[name].values()), name
    receivers = [r() if isinstance(r, weakref.ref) else r for r in signals.case_decided.receivers.values()]
    assert sum(1 for r in receivers if getattr(r, "__name__", "") == "_notify") == 1


def test_the_verification_listener_runs_before_the_caches_see_the_flush(app, settings, clock):
    create_app(settings, clock=clock)
    first = list(Session.dispatch.before_flush._clslevel[Session])[0]
    assert first is verification._follow_the_data


def test_each_feature_brings_its_pages_and_jobs(app):
    assert jobs.HANDLERS["backchannel_logout"] is backchannel.deliver
    assert jobs.HANDLERS["notice"] is notices.deliver
    assert jobs.HANDLERS["verification.retry"] is verification.retry
    for blueprint in ("login", "accounts", "oauth", "center", "clients_public", "portal", "admin",
                      "admin_users", "admin_audit", "admin_clients", "admin_cases", "admin_staff",
                      "verification"):
        assert blueprint in app.blueprints
    from idp import cases
    assert {t.name for t in cases.case_types()} >= {"registration", "verification", "identity_conflict"}
