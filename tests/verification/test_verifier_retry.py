"""Issue 18, item 3: the verifier unavailable on the automatic check → the data saved, the
account unverified, the user told, and a ``verification.retry`` job that asks again later.

The national interface is a real local HTTP server started by the test (signing its answers as
the interface does); it first answers 503 or does not answer in time, then answers. The worker
is driven by ``jobs.run_due`` with the test clock moved past the backoff: nothing sleeps.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import text

from idp import jobs, unit_of_work
from idp.extensions import db
from idp.models.accounts import DISABLED, Account
from idp.models.oauth import Job
from idp.security.signing import signed_headers
from idp.verification import service
from tests.conftest import TEST_DATABASE_URL, audit_events, csrf_token, login, make_account

SECRET = "national-secret"
ID_1 = "11010519491231002X"
USCC_1 = "91350100M000100Y43"


class National:
    """The national interface: ``mode`` is 503, hang (answers after the caller gave up), match
    or mismatch; every request is recorded."""

    def __init__(self) -> None:
        self.mode = "503"
        self.requests: list[dict] = []
        self.release = threading.Event()
        self.meanwhile = None  # called before answering: what happens while the interface is asked
        national = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                national.requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                if national.meanwhile is not None:
                    national.meanwhile()
                if national.mode == "hang":
                    national.release.wait(5)  # released when the test ends
                    return
                if national.mode == "503":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"result": national.mode, "reference": "NP-7"}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                for name, value in signed_headers(SECRET, int(time.time()), body).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/verify"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def national():
    server = National()
    yield server
    server.stop()


@pytest.fixture
def settings(settings, national):
    settings.update(CAPTCHA="off", VERIFIER="http", VERIFIER_URL=national.url, VERIFIER_SECRET=SECRET,
                    VERIFIER_TIMEOUT=0.3, VERIFIER_RETRIES=0, BACKCHANNEL_MAX_ATTEMPTS=3)
    return settings


def person(**profile) -> Account:
    profile = {"document_type": "resident_id", "identity_region": "mainland", **profile}
    return make_account("natural", "zhang_san", **profile)


def reload(account_id: int) -> Account:
    db.session.expire_all()
    return db.session.get(Account, account_id)


def retries() -> list[Job]:
    db.session.expire_all()
    return list(db.session.execute(db.select(Job).filter_by(kind=service.RETRY_JOB).order_by(Job.id)).scalars())


def waiting(rows: list[Job]) -> list[Job]:
    return [job for job in rows if job.done_at is None and job.failed_at is None]


def save_unavailable(account: Account, fields: dict) -> None:
    """保存 while the interface is down, as one unit of work (the request's)."""
    with unit_of_work.unit():
        assert service.save_profile(account, fields).outcome == "unavailable"


def test_a_save_while_the_verifier_is_down_keeps_the_data_tells_the_user_and_a_retry_verifies(
        app, client, clock, national):
    account = person()
    assert login(app, client, "zhang_san", captcha="").status_code == 302
    page = client.post("/center/profile/edit", data={
        "csrf_token": csrf_token(client, "/center/profile/edit"), "name": "张三", "identity_region": "mainland",
        "document_type": "resident_id", "document_number": ID_1, "birth_date": "", "email": "", "address": "",
        "landline": ""}, follow_redirects=True)
    assert page.status_code == 200
    assert "系统将稍后自动重新进行实名认证" in page.get_data(as_text=True)  # the clear message
    account = reload(account.id)
    assert (account.document_number, account.verification_status) == (ID_1, "unverified")  # saved, unverified
    [job] = retries()
    assert job.attempts == 0 and job.payload["account_id"] == account.id
    raw = db.session.execute(text("SELECT payload FROM jobs WHERE id = :id"), {"id": job.id}).scalar_one()
    assert ID_1 not in str(raw) and "张三" not in str(raw)  # a keyed digest, not the data

    assert jobs.run_due() == 0  # not before the backoff
    asked = len(national.requests)
    national.mode = "match"
    clock.advance(jobs.BACKOFF_SECONDS[0])
    assert jobs.run_due() == 1
    assert len(national.requests) == asked + 1
    assert national.requests[-1]["document_number"] == ID_1
    account = reload(account.id)
    assert account.verification_status == "verified_auto" and account.verification_method == "national_platform"
    assert account.verification_reference == "NP-7" and json.loads(account.verified_data)["name"] == "张三"
    checked = audit_events("verification_checked")[-1]
    assert checked.outcome == "success" and checked.subject == "zhang_san"
    assert checked.details == {"result": "match", "status_before": "unverified", "status": "verified_auto",
                               "retried": True}
    assert retries()[0].done_at is not None
    clock.advance(3600)
    assert jobs.run_due() == 0 and len(national.requests) == asked + 1  # asked once


def test_a_verifier_that_does_not_answer_in_time_is_asked_again_later(app, clock, national):
    national.mode = "hang"
    account = person(document_number=ID_1)
    save_unavailable(account, {"name": "张三"})
    national.mode = "match"
    clock.advance(jobs.BACKOFF_SECONDS[0])
    assert jobs.run_due() == 1
    assert reload(account.id).verification_status == "verified_auto"


def test_a_unit_is_retried_too_and_a_mismatch_leaves_it_as_the_save_would(app, clock, national):
    account = make_account("legal", "fz_unit", uscc=USCC_1, org_name="福州示例有限公司", org_kind="enterprise",
                           legal_rep_name="王五")
    save_unavailable(account, {"legal_rep_name": "王五"})
    national.mode = "mismatch"
    clock.advance(jobs.BACKOFF_SECONDS[0])
    assert jobs.run_due() == 1
    assert national.requests[-1]["uscc"] == USCC_1
    assert reload(account.id).verification_status == "unverified"
    checked = audit_events("verification_checked")[-1]
    assert checked.outcome == "failure" and checked.details["result"] == "mismatch"


def test_identity_data_changed_before_the_retry_runs_make_it_do_nothing(app, clock, national):
    account = person(document_number=ID_1)
    save_unavailable(account, {"name": "张三"})
    account.name = "李四"  # changed without a save that asks again (an import, a console edit)
    db.session.commit()
    asked = len(national.requests)
    national.mode = "match"
    clock.advance(jobs.BACKOFF_SECONDS[0])
    assert jobs.run_due() == 1
    assert len(national.requests) == asked  # the verifier is not asked about other data
    assert reload(account.id).verification_status == "unverified"
    assert retries()[0].done_at is not None  # done: nothing is left to retry


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="SQLite lets one writer at a time: the save would wait for the job")
def test_data_changed_while_the_retry_asks_the_verifier_drop_its_answer(app, clock, national):
    """The retry read the account before it asked; a save committed meanwhile wins: the account
    is read again under a row lock before the answer is applied."""
    account = person(document_number=ID_1)
    save_unavailable(account, {"name": "张三"})
    account_id, engine = account.id, db.engine

    def a_save_meanwhile():  # another request, on a connection of its own, commits a new name
        with engine.begin() as conn:
            conn.execute(text("UPDATE accounts SET name = '李四' WHERE id = :id"), {"id": account_id})

    national.mode, national.meanwhile = "match", a_save_meanwhile
    clock.advance(jobs.BACKOFF_SECONDS[0])
    assert jobs.run_due() == 1
    assert national.requests[-1]["name"] == "张三"  # asked about the data as they were
    account = reload(account_id)
    assert account.name == "李四" and account.verification_status == "unverified"  # the answer is dropped
    assert not [e for e in audit_events("verification_checked") if e.details.get("retried")]


def test_a_disabled_account_is_not_verified_by_a_retry(app, clock, national):
    account = person(document_number=ID_1)
    save_unavailable(account, {"name": "张三"})
    account.status = DISABLED
    db.session.commit()
    asked = len(national.requests)
    national.mode = "match"
    clock.advance(jobs.BACKOFF_SECONDS[0])
    assert jobs.run_due() == 1
    assert len(national.requests) == asked
    assert reload(account.id).verification_status == "unverified"


def test_an_account_verified_meanwhile_is_not_asked_about_again(app, clock, national):
    account = person(document_number=ID_1)
    save_unavailable(account, {"name": "张三"})
    national.mode = "match"
    with unit_of_work.unit():  # a later save got the interface's answer
        assert service.save_profile(account, {}).outcome == "matched"
    asked = len(national.requests)
    assert waiting(retries()) == []  # the answer made the retry pointless
    clock.advance(jobs.BACKOFF_SECONDS[0])
    assert jobs.run_due() == 0 and len(national.requests) == asked


def test_a_second_save_replaces_the_waiting_retry(app, clock, national):
    account = person(document_number=ID_1)
    save_unavailable(account, {"name": "张三"})
    save_unavailable(account, {"name": "张叁"})
    first, second = retries()
    assert first.done_at is not None and first.last_error == jobs.SUPERSEDED
    assert waiting([first, second]) == [second]
    national.mode = "match"
    clock.advance(jobs.BACKOFF_SECONDS[0])
    assert jobs.run_due() == 1
    assert national.requests[-1]["name"] == "张叁"
    assert reload(account.id).verification_status == "verified_auto"


def test_a_verifier_down_for_every_attempt_fails_the_retry_and_audits_it(app, clock, national):
    account = person(document_number=ID_1)
    save_unavailable(account, {"name": "张三"})
    for attempt in range(app.config["BACKCHANNEL_MAX_ATTEMPTS"]):
        clock.advance(jobs.BACKOFF_SECONDS[attempt])
        assert jobs.run_due() == 1
    [job] = retries()
    assert job.failed_at is not None and job.attempts == app.config["BACKCHANNEL_MAX_ATTEMPTS"]
    [failed] = audit_events("job_failed")
    assert failed.outcome == "failure" and failed.subject == "zhang_san"
    assert failed.details["kind"] == service.RETRY_JOB and failed.details["job_id"] == job.id
    unavailable = [e for e in audit_events("verification_checked") if e.details.get("retried")]
    assert len(unavailable) == app.config["BACKCHANNEL_MAX_ATTEMPTS"]
    assert all(e.details["result"] == "unavailable" for e in unavailable)
    assert reload(account.id).verification_status == "unverified"
    clock.advance(86400)
    assert jobs.run_due() == 0
