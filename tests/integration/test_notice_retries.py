"""Issue 18, item 3: an SMS or e-mail notice whose gateway fails (5xx, timeout, refused
connection) is not lost: it is a job, retried by the worker with backoff until delivered (once)
or its attempts run out (then failed and audited); its recipient and parameters are stored
encrypted. The gateways are real local servers started by the test; the worker is driven by
``jobs.run_due`` with the test clock moved past the backoff: nothing sleeps.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from idp import jobs, notices, unit_of_work
from idp.extensions import db
from idp.models.oauth import Job
from tests.conftest import audit_events
from tests.integration.test_sms import SECRET, gateway  # noqa: F401 (fixture)
from tests.recovery.conftest import look_up, reset, send_code
from tests.recovery.smtp_server import SmtpServer

PHONE = "13800138000"
EMAIL = "zhangsan@example.cn"
PASSWORD_PARAMS = {"login_name": "zhang_san", "password": "Tmp-Secret#42"}


@pytest.fixture
def smtp(tmp_path):
    server = SmtpServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def settings(settings, request):
    settings.update({"CAPTCHA": "off", "RECOVERY_ANSWER_FLOOR": 0, "BACKCHANNEL_MAX_ATTEMPTS": 3})
    if "gateway" in request.fixturenames:
        server = request.getfixturevalue("gateway")
        settings.update({"SMS_GATEWAY": "http", "SMS_HTTP_URL": server.url, "SMS_HTTP_SECRET": SECRET,
                         "SMS_HTTP_TIMEOUT": 0.5})
    if "smtp" in request.fixturenames:
        server = request.getfixturevalue("smtp")
        settings.update({"MAIL_SENDER": "smtp", "MAIL_SMTP_HOST": "localhost", "MAIL_SMTP_PORT": server.port,
                         "MAIL_SMTP_TLS": "starttls", "MAIL_FROM": "noreply@idp.example.cn",
                         "MAIL_SMTP_CA_FILE": str(server.cert), "MAIL_SMTP_TIMEOUT": 2})
    return settings


def notice_jobs() -> list[Job]:
    db.session.expire_all()
    return list(db.session.execute(db.select(Job).filter_by(kind=notices.JOB).order_by(Job.id)).scalars())


def sent(server, template: str) -> list[dict]:
    return [m["body"] for m in server.received if m["body"]["template"] == template]


def queue_sms(template: str = "appeal_approved", params: dict | None = None) -> None:
    """A notice from a unit of work (a decision's, a command's) that commits."""
    with unit_of_work.unit():
        notices.sms("zhang_san", PHONE, template, dict(params or PASSWORD_PARAMS))


def test_with_the_gateway_up_a_notice_goes_out_when_the_unit_ends_and_nothing_waits(app, gateway):
    queue_sms()
    [message] = sent(gateway, "appeal_approved")  # no worker involved
    assert message["to"] == PHONE and message["params"] == PASSWORD_PARAMS
    [job] = notice_jobs()
    assert job.done_at is not None and job.attempts == 1 and job.sealed is None  # nothing kept once sent
    assert jobs.run_due() == 0


def test_a_notice_of_a_unit_rolled_back_is_neither_queued_nor_sent(app, gateway):
    with pytest.raises(RuntimeError), unit_of_work.unit():
        notices.sms("zhang_san", PHONE, "appeal_approved", PASSWORD_PARAMS)
        raise RuntimeError("the decision failed")
    assert notice_jobs() == [] and gateway.received == []


def test_a_notice_the_gateway_refuses_is_retried_with_backoff_and_delivered_once(app, clock, gateway):
    gateway.mode = "error"  # 500
    queue_sms()
    assert len(sent(gateway, "appeal_approved")) == 1  # the first attempt, right after the commit
    [job] = notice_jobs()
    assert job.attempts == 1 and job.done_at is None and job.failed_at is None
    assert "sms_unavailable" in job.last_error
    [unavailable] = audit_events("sms_unavailable")
    assert unavailable.outcome == "failure" and unavailable.subject == "zhang_san"
    assert unavailable.details["template"] == "appeal_approved" and unavailable.details["retried"] is True
    # Stored encrypted: neither the phone nor the temporary password is in the row in clear.
    raw = db.session.execute(text("SELECT payload, sealed FROM jobs")).one()
    assert PHONE not in str(raw) and "Tmp-Secret" not in str(raw) and raw.sealed.startswith("v1.")

    assert jobs.run_due() == 0  # not before its backoff
    gateway.mode = "ok"
    clock.advance(jobs.BACKOFF_SECONDS[0])
    assert jobs.run_due() == 1
    messages = sent(gateway, "appeal_approved")
    assert len(messages) == 2 and messages[-1]["to"] == PHONE and messages[-1]["params"] == PASSWORD_PARAMS
    [job] = notice_jobs()
    assert job.done_at is not None and job.attempts == 2 and job.sealed is None
    clock.advance(86400)
    assert jobs.run_due() == 0 and len(sent(gateway, "appeal_approved")) == 2  # never sent again


def test_a_notice_that_timed_out_is_sent_again_at_least_once(app, clock, gateway):
    """The gateway took the first message but answered after SMS_HTTP_TIMEOUT: the provider
    cannot know, so the retry sends it again (docs/deploy.md, "When a service is down")."""
    gateway.mode = "slow"
    queue_sms("password_recovered", {"login_name": "zhang_san", "time": "2026-12-07 10:00"})
    [job] = notice_jobs()
    assert job.attempts == 1 and job.done_at is None
    gateway.release.set()
    gateway.mode = "ok"
    clock.advance(jobs.BACKOFF_SECONDS[0])
    assert jobs.run_due() == 1
    assert len(sent(gateway, "password_recovered")) == 2
    assert notice_jobs()[0].done_at is not None


def test_a_notice_failing_every_attempt_is_marked_failed_and_audited(app, clock, gateway):
    gateway.stop()  # connection refused
    queue_sms()
    for attempt in range(1, app.config["BACKCHANNEL_MAX_ATTEMPTS"]):
        clock.advance(jobs.BACKOFF_SECONDS[attempt - 1])
        assert jobs.run_due() == 1
    [job] = notice_jobs()
    assert job.failed_at is not None and job.done_at is None
    assert job.attempts == app.config["BACKCHANNEL_MAX_ATTEMPTS"]
    assert job.sealed is None  # the recipient and the password are not kept for nothing
    [failed] = audit_events("job_failed")
    assert failed.outcome == "failure" and failed.subject == "zhang_san"
    assert failed.details["kind"] == notices.JOB and failed.details["job_id"] == job.id
    assert failed.details["attempts"] == app.config["BACKCHANNEL_MAX_ATTEMPTS"]
    assert len(audit_events("sms_unavailable")) == app.config["BACKCHANNEL_MAX_ATTEMPTS"]
    clock.advance(86400)
    assert jobs.run_due() == 0


def test_the_notice_of_a_password_reset_is_retried_after_the_request(app, client, clock, gateway):
    from tests.conftest import make_account

    make_account("natural", "zhang_san", name="张三", phone=PHONE)
    look_up(app, client, "zhang_san")
    send_code(client)
    code = gateway.received[-1]["body"]["params"]["code"]
    gateway.mode = "error"
    assert reset(client, code).status_code == 302  # the reset stands, the notice failed
    assert len(sent(gateway, "password_recovered")) == 1
    assert audit_events("password_recovered") and audit_events("sms_unavailable")
    gateway.mode = "ok"
    clock.advance(jobs.BACKOFF_SECONDS[0])
    assert jobs.run_due() == 1
    assert len(sent(gateway, "password_recovered")) == 2
    assert [j.done_at is not None for j in notice_jobs()] == [True]


@pytest.mark.parametrize("mode", ["unavailable", "refuse_recipient", "refuse_recipient_quoting"])
def test_an_e_mail_notice_the_mail_server_turns_away_is_retried(app, clock, smtp, mode):
    smtp.mode = mode  # 421 at the greeting, or 550 for the recipient (the refusal quotes the address)
    with unit_of_work.unit():
        notices.mail("zhang_san", EMAIL, "password_recovered",
                     {"login_name": "zhang_san", "time": "2026-12-07 10:00", "method": "短信验证码"})
    assert smtp.messages == []
    [unavailable] = audit_events("mail_unavailable")
    assert unavailable.details["template"] == "password_recovered"
    assert EMAIL not in str(unavailable.details).lower()
    raw = db.session.execute(text("SELECT payload, sealed, last_error FROM jobs")).one()
    assert EMAIL not in str(raw).lower()
    smtp.mode = "ok"
    clock.advance(jobs.BACKOFF_SECONDS[0])
    assert jobs.run_due() == 1
    [message] = smtp.messages
    assert message["to"] == [EMAIL]
