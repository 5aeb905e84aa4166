"""One unit of work per request, CLI command and job (idp.unit_of_work, docs/architecture.md).

Services only flush; the request commits once when its answer is below 400 and rolls back
otherwise; an audit event is in the transaction of the change it describes; refusals that must
be kept (failed logins, refused and replayed tokens) are written through a transaction of
their own and survive the rollback of their request.

Some tests add a route of their own to the provider: a view that calls the real services and
then refuses, the way a feature's view would, to show what the request's end does with it.
"""

from __future__ import annotations

import pytest
from flask import jsonify
from sqlalchemy import event
from sqlalchemy.orm import Session

from idp import signals
from idp.admin import user_service
from idp.cli import main
from idp.errors import Refused
from idp.extensions import db
from idp.models.accounts import Account
from tests.conftest import PASSWORD, audit_events, login, make_account


@pytest.fixture
def commits():
    """Every commit of any session while the test runs, counted."""
    seen = []

    def count(session):
        seen.append(session)

    event.listen(Session, "after_commit", count)
    yield seen
    event.remove(Session, "after_commit", count)


def _stored_account(login_name: str) -> Account | None:
    db.session.expire_all()
    return db.session.execute(db.select(Account).filter_by(login_name=login_name)).scalar_one_or_none()


def _route(app, rule: str, view) -> None:
    """A view added for the test, as a feature would add one (before the first request)."""
    app.add_url_rule(rule, view.__name__, view, methods=["POST"])
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False


# --- (a) a refusal mid-request leaves nothing written -----------------------------------------

def test_a_service_refusal_mid_request_leaves_nothing_written(app, client):
    make_account(login_name="li_si")

    def change_then_refuse():
        account = db.session.execute(db.select(Account).filter_by(login_name="li_si")).scalar_one()
        user_service.force_password_change(account, "test")  # flushed: the row is updated
        try:
            raise Refused("changed_mind")  # a later rule of the same request says no
        except Refused as error:
            return jsonify(reason=error.reason), 409

    _route(app, "/test/change-then-refuse", change_then_refuse)
    response = client.post("/test/change-then-refuse")
    assert response.status_code == 409
    assert _stored_account("li_si").must_change_password is False
    assert audit_events("staff_action") == []


def test_an_unexpected_error_mid_request_leaves_nothing_written(app, client):
    make_account(login_name="li_si")

    def change_then_fail():
        account = db.session.execute(db.select(Account).filter_by(login_name="li_si")).scalar_one()
        user_service.force_password_change(account, "test")
        raise RuntimeError("a bug after the change")

    _route(app, "/test/change-then-fail", change_then_fail)
    response = client.post("/test/change-then-fail")
    assert response.status_code == 500
    assert _stored_account("li_si").must_change_password is False


def test_a_successful_request_commits_once(app, client, commits):
    make_account(login_name="li_si")
    db.session.commit()
    commits.clear()

    def change():
        account = db.session.execute(db.select(Account).filter_by(login_name="li_si")).scalar_one()
        user_service.force_password_change(account, "test")
        user_service.lock(account, 5, "test")  # a second service: the same unit
        return jsonify(done=True)

    _route(app, "/test/change", change)
    assert client.post("/test/change").status_code == 200
    assert len(commits) == 1
    assert _stored_account("li_si").must_change_password is True


# --- (b) an audit event is in the transaction of the change it describes -----------------------

def test_the_audit_event_of_a_change_is_rolled_back_with_it(app, client):
    make_account(login_name="li_si")

    def change_then_refuse():
        account = db.session.execute(db.select(Account).filter_by(login_name="li_si")).scalar_one()
        user_service.force_password_change(account, "test")
        assert [e.details["action"] for e in audit_events("staff_action")] == ["password_change_forced"]
        return jsonify(reason="changed_mind"), 400

    _route(app, "/test/audited-change", change_then_refuse)
    assert client.post("/test/audited-change").status_code == 400
    assert audit_events("staff_action") == []
    assert _stored_account("li_si").must_change_password is False


def test_the_audit_event_of_a_change_is_committed_with_it(app, client):
    make_account(login_name="li_si")

    def change():
        account = db.session.execute(db.select(Account).filter_by(login_name="li_si")).scalar_one()
        user_service.force_password_change(account, "test")
        return jsonify(done=True)

    _route(app, "/test/audited-change-kept", change)
    assert client.post("/test/audited-change-kept").status_code == 200
    assert [e.details["action"] for e in audit_events("staff_action")] == ["password_change_forced"]
    assert _stored_account("li_si").must_change_password is True


# --- (c) a failed login's record survives its request's rollback --------------------------------

def test_a_failed_login_is_kept_although_its_request_rolls_back(app, client):
    make_account(login_name="li_si")
    response = login(app, client, "li_si", password="Wrong-pass1!")
    assert response.status_code == 401  # the request's unit of work rolls back
    failed = audit_events("login_failed")
    assert len(failed) == 1 and failed[0].subject == "li_si" and failed[0].outcome == "failure"


def test_the_lockout_and_its_audit_events_survive_the_rollbacks(app, client):
    make_account(login_name="li_si")
    limit = app.config["LOGIN_MAX_FAILURES"]
    statuses = [login(app, client, "li_si", password="Wrong-pass1!").status_code for _ in range(limit)]
    assert all(status in (401, 429) for status in statuses)
    assert len(audit_events("account_locked")) == 1
    assert len(audit_events("login_failed")) >= limit - 1
    response = login(app, client, "li_si")  # the right password: still locked
    assert response.status_code == 401 and 'data-reason="account_locked"' in response.get_data(as_text=True)


def test_a_refusal_is_kept_while_the_work_of_its_request_is_rolled_back(app, client):
    make_account(login_name="li_si")

    def change_then_fail_a_login():
        account = db.session.execute(db.select(Account).filter_by(login_name="li_si")).scalar_one()
        user_service.force_password_change(account, "test")
        signals.login_failed.send(app, subject="li_si", outcome="failure", details={"reason": "test"})
        return jsonify(reason="invalid_credentials"), 401

    _route(app, "/test/failed-attempt", change_then_fail_a_login)
    assert client.post("/test/failed-attempt").status_code == 401
    assert [e.details for e in audit_events("login_failed")] == [{"reason": "test"}]
    assert audit_events("staff_action") == []
    assert _stored_account("li_si").must_change_password is False


# --- (d) a refused token request's audit survives: tests/oidc/test_unit_of_work_tokens.py --------

# --- (e) a CLI command commits once ---------------------------------------------------------------

def test_a_cli_command_commits_once(app, commits):
    db.session.commit()
    commits.clear()
    runner = app.test_cli_runner()
    result = runner.invoke(main, ["clients", "create", "--name", "业务系统", "--redirect-uri",
                                  "https://rp.example.cn/cb", "--scope", "openid", "--json"])
    assert result.exit_code == 0, result.output
    assert len(commits) == 1
    assert len(audit_events("client_changed")) == 1


def test_a_refused_cli_command_writes_nothing(app, commits):
    make_account(login_name="li_si")
    db.session.commit()
    registered = len(audit_events("account_registered"))
    commits.clear()
    runner = app.test_cli_runner()
    result = runner.invoke(main, ["users", "create", "--type", "natural", "--login", "LI_SI",
                                  "--password", PASSWORD])
    assert result.exit_code != 0 and "login_name_taken" in result.output or "taken" in result.output
    assert commits == []
    assert len(audit_events("account_registered")) == registered
