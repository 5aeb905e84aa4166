"""SMS verification codes (send_code / check_code) and the SMS gateways.

Codes: six digits, valid SMS_CODE_TTL seconds, single use, resend after SMS_RESEND_SECONDS,
capped per phone per day and per client address per hour, void after SMS_CODE_MAX_ATTEMPTS
wrong entries; sending is gated by a single-use image captcha. The HTTP gateway is exercised
against a real signed-request server on 127.0.0.1; the outbox against its development page.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from idp.extensions import db
from idp.models.audit import AuditEvent
from idp.security import signing
from idp.security.sms_codes import check_code, send_code
from tests.conftest import csrf_token, outbox_codes, solve_captcha

PHONE = "13800138000"
PURPOSE = "register"
ADDRESS = "203.0.113.7"
SECRET = "gateway-shared-secret"


@pytest.fixture
def settings(settings, request):
    """Per-test setting overrides through ``@pytest.mark.parametrize("settings", …, indirect=True)``."""
    settings.update(getattr(request, "param", {}))
    return settings


def request_code(app, client, phone: str = PHONE, captcha: str | None = None):
    token = csrf_token(client, "/register/natural")
    answer = solve_captcha(app, client, "sms") if captcha is None else captcha
    return client.post("/register/send-code", data={"phone": phone, "captcha": answer, "csrf_token": token})


def send(phone: str = PHONE, address: str = ADDRESS, purpose: str = PURPOSE):
    return send_code(phone, purpose, address)


def last_code(app) -> str:
    return outbox_codes(app)[-1]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1000000:06d}"


# --- through the endpoint --------------------------------------------------------------------


def test_the_endpoint_sends_a_six_digit_code(app, client):
    response = request_code(app, client)
    assert response.status_code == 200
    body = response.get_json()
    assert body["ok"] is True
    assert body["retry_after"] == 60
    [code] = outbox_codes(app)
    assert re.fullmatch(r"\d{6}", code)
    with app.test_request_context():
        assert check_code(PHONE, PURPOSE, code) is None


def test_the_endpoint_normalises_the_phone_before_sending(app, client):
    assert request_code(app, client, "+86 138-0013-8000").status_code == 200
    with app.test_request_context():
        assert check_code(PHONE, PURPOSE, last_code(app)) is None


def test_the_endpoint_refuses_a_malformed_phone_without_sending(app, client):
    response = request_code(app, client, "12800138000")
    assert response.status_code == 400
    assert response.get_json()["reason"] == "invalid_phone"
    assert "phone" in response.get_json()["errors"]
    assert outbox_codes(app) == []


def test_the_endpoint_refuses_a_resend_within_a_minute_and_allows_it_after(app, client, clock):
    assert request_code(app, client).status_code == 200
    clock.advance(30)
    response = request_code(app, client)
    assert response.status_code == 429
    body = response.get_json()
    assert body["ok"] is False
    assert body["reason"] == "resend_too_soon"
    assert 0 < body["retry_after"] <= 31
    assert len(outbox_codes(app)) == 1
    clock.advance(31)
    assert request_code(app, client).status_code == 200
    assert len(outbox_codes(app)) == 2


def test_a_wrong_captcha_is_refused_and_no_sms_is_sent(app, client):
    answer = solve_captcha(app, client, "sms")
    response = request_code(app, client, captcha="0000" if answer != "0000" else "2222")
    assert response.status_code == 400
    assert response.get_json()["reason"] == "captcha_wrong"
    assert outbox_codes(app) == []
    sent = db.session.execute(db.select(AuditEvent).filter_by(event="sms_code_sent")).scalars().all()
    assert sent == []


def test_a_missing_captcha_is_refused(app, client):
    client.get("/captcha/sms.png")
    token = csrf_token(client, "/register/natural")
    response = client.post("/register/send-code", data={"phone": PHONE, "csrf_token": token})
    assert response.status_code == 400
    assert response.get_json()["reason"] == "captcha_wrong"
    assert outbox_codes(app) == []


def test_a_captcha_works_only_once(app, client):
    token = csrf_token(client, "/register/natural")
    answer = solve_captcha(app, client, "sms")
    first = client.post("/register/send-code", data={"phone": PHONE, "captcha": answer, "csrf_token": token})
    assert first.status_code == 200
    again = client.post("/register/send-code",
                        data={"phone": "13900139000", "captcha": answer, "csrf_token": token})
    assert again.status_code == 400
    assert again.get_json()["reason"] == "captcha_wrong"
    assert len(outbox_codes(app)) == 1


def test_a_wrong_captcha_answer_spends_the_challenge(app, client):
    token = csrf_token(client, "/register/natural")
    answer = solve_captcha(app, client, "sms")
    miss = client.post("/register/send-code",
                       data={"phone": PHONE, "captcha": "0000" if answer != "0000" else "2222", "csrf_token": token})
    assert miss.get_json()["reason"] == "captcha_wrong"
    late = client.post("/register/send-code", data={"phone": PHONE, "captcha": answer, "csrf_token": token})
    assert late.get_json()["reason"] == "captcha_wrong"
    assert outbox_codes(app) == []


def test_a_captcha_expires(app, client, clock):
    token = csrf_token(client, "/register/natural")
    answer = solve_captcha(app, client, "sms")
    clock.advance(app.config["CAPTCHA_TTL"] + 1)
    response = client.post("/register/send-code", data={"phone": PHONE, "captcha": answer, "csrf_token": token})
    assert response.get_json()["reason"] == "captcha_wrong"


def test_send_code_without_csrf_token_is_refused(app, client):
    answer = solve_captcha(app, client, "sms")
    response = client.post("/register/send-code", data={"phone": PHONE, "captcha": answer})
    assert response.status_code == 400
    assert outbox_codes(app) == []


@pytest.mark.parametrize("settings", [{"SMS_MAX_PER_PHONE_PER_DAY": 3}], indirect=True, ids=["3 a day"])
def test_the_endpoint_caps_codes_per_phone_per_day(app, client, clock):
    for _ in range(3):
        assert request_code(app, client).status_code == 200
        clock.advance(61)
    response = request_code(app, client)
    assert response.status_code == 429
    body = response.get_json()
    assert body["reason"] == "phone_daily_cap"
    assert body["retry_after"] > 3600
    assert len(outbox_codes(app)) == 3
    # Another phone is not affected.
    assert request_code(app, client, "13900139000").status_code == 200


@pytest.mark.parametrize("settings", [{"SMS_MAX_PER_ADDRESS_PER_HOUR": 3}], indirect=True, ids=["3 an hour"])
def test_the_endpoint_caps_codes_per_client_address_per_hour(app, client, clock):
    for n in range(3):
        assert request_code(app, client, f"1390013900{n}").status_code == 200
    response = request_code(app, client, "13700137000")
    assert response.status_code == 429
    assert response.get_json()["reason"] == "address_cap"
    assert 0 < response.get_json()["retry_after"] <= 3601
    assert len(outbox_codes(app)) == 3
    clock.advance(3601)
    assert request_code(app, client, "13700137000").status_code == 200


# --- send_code / check_code directly ----------------------------------------------------------


def test_a_code_has_six_digits_and_is_right_once(app):
    with app.test_request_context():
        result = send()
        assert result.sent and result.reason is None
        assert result.retry_after == app.config["SMS_RESEND_SECONDS"]
        code = last_code(app)
        assert re.fullmatch(r"\d{6}", code)
        assert check_code(PHONE, PURPOSE, code) is None
        assert check_code(PHONE, PURPOSE, code) == "sms_code_missing_or_expired"


def test_a_code_is_valid_for_five_minutes(app, clock):
    assert app.config["SMS_CODE_TTL"] == 300
    with app.test_request_context():
        send()
        code = last_code(app)
        clock.advance(299)
        assert check_code(PHONE, PURPOSE, code) is None


def test_a_code_expires_after_five_minutes(app, clock):
    with app.test_request_context():
        send()
        code = last_code(app)
        clock.advance(301)
        assert check_code(PHONE, PURPOSE, code) == "sms_code_missing_or_expired"


def test_without_a_code_sent_the_check_fails(app):
    with app.test_request_context():
        assert check_code(PHONE, PURPOSE, "123456") == "sms_code_missing_or_expired"


def test_a_code_belongs_to_its_phone_and_its_purpose(app, clock):
    with app.test_request_context():
        send()
        code = last_code(app)
        assert check_code("13900139000", PURPOSE, code) == "sms_code_missing_or_expired"
        assert check_code(PHONE, "recovery", code) == "sms_code_missing_or_expired"
        assert check_code(PHONE, PURPOSE, code) is None


def test_a_new_code_replaces_the_previous_one(app, clock):
    with app.test_request_context():
        send()
        first = last_code(app)
        clock.advance(61)
        assert send().sent
        second = last_code(app)
        if first != second:
            assert check_code(PHONE, PURPOSE, first) == "sms_code_wrong"
        assert check_code(PHONE, PURPOSE, second) is None


def test_a_resend_within_a_minute_is_refused_with_the_time_to_wait(app, clock):
    with app.test_request_context():
        assert send().sent
        clock.advance(20)
        refused = send()
        assert not refused.sent
        assert refused.reason == "resend_too_soon"
        assert 0 < refused.retry_after <= 41
        clock.advance(41)
        assert send().sent
        assert len(outbox_codes(app)) == 2


def test_the_resend_timer_is_per_purpose(app):
    with app.test_request_context():
        assert send(purpose="register").sent
        assert send(purpose="recovery").sent


@pytest.mark.parametrize("settings", [{"SMS_MAX_PER_PHONE_PER_DAY": 2}], indirect=True, ids=["2 a day"])
def test_a_phone_receives_at_most_the_daily_cap(app, clock):
    with app.test_request_context():
        assert send(address="198.51.100.1").sent
        clock.advance(61)
        assert send(address="198.51.100.2").sent
        clock.advance(61)
        refused = send(address="198.51.100.3")
        assert (refused.sent, refused.reason) == (False, "phone_daily_cap")
        assert refused.retry_after > 0
        clock.advance(86400)
        assert send(address="198.51.100.4").sent


@pytest.mark.parametrize("settings", [{"SMS_MAX_PER_ADDRESS_PER_HOUR": 2}], indirect=True, ids=["2 an hour"])
def test_an_address_requests_at_most_the_hourly_cap(app, clock):
    with app.test_request_context():
        assert send("13900139001").sent
        assert send("13900139002").sent
        refused = send("13900139003")
        assert (refused.sent, refused.reason) == (False, "address_cap")
        assert 0 < refused.retry_after <= 3601
        assert send("13900139003", address="198.51.100.9").sent  # another address is not affected
        clock.advance(3601)
        assert send("13900139004").sent


def test_refused_sends_are_audited_with_the_reason_and_a_masked_phone(app):
    with app.test_request_context():
        send()
        send()
    [event] = db.session.execute(db.select(AuditEvent).filter_by(event="sms_code_refused")).scalars().all()
    assert event.details["reason"] == "resend_too_soon"
    assert PHONE not in json.dumps(event.details) and event.subject != PHONE
    sent = db.session.execute(db.select(AuditEvent).filter_by(event="sms_code_sent")).scalars().all()
    assert len(sent) == 1 and sent[0].subject != PHONE


def test_after_the_maximum_of_wrong_codes_the_right_one_no_longer_works(app):
    attempts = app.config["SMS_CODE_MAX_ATTEMPTS"]
    with app.test_request_context():
        send()
        code = last_code(app)
        for _ in range(attempts):
            assert check_code(PHONE, PURPOSE, wrong(code)) == "sms_code_wrong"
        assert check_code(PHONE, PURPOSE, code) == "sms_code_missing_or_expired"


def test_fewer_wrong_codes_than_the_maximum_leave_the_code_usable(app):
    attempts = app.config["SMS_CODE_MAX_ATTEMPTS"]
    with app.test_request_context():
        send()
        code = last_code(app)
        for _ in range(attempts - 1):
            assert check_code(PHONE, PURPOSE, wrong(code)) == "sms_code_wrong"
        assert check_code(PHONE, PURPOSE, code) is None


def test_a_new_code_starts_a_fresh_count_of_wrong_entries(app, clock):
    attempts = app.config["SMS_CODE_MAX_ATTEMPTS"]
    with app.test_request_context():
        send()
        for _ in range(attempts - 1):
            check_code(PHONE, PURPOSE, wrong(last_code(app)))
        clock.advance(61)
        send()
        code = last_code(app)
        assert check_code(PHONE, PURPOSE, wrong(code)) == "sms_code_wrong"
        assert check_code(PHONE, PURPOSE, code) is None


# --- the development outbox -------------------------------------------------------------------


def test_the_outbox_page_lists_the_messages_in_development(app, client):
    assert app.config["ENV"] == "development"
    assert client.get("/dev/sms-outbox").status_code == 200
    request_code(app, client)
    page = client.get("/dev/sms-outbox").get_data(as_text=True)
    assert last_code(app) in page
    assert PHONE in page


def test_the_outbox_page_does_not_exist_in_production(app, settings, tmp_path, clock):
    from idp import create_app

    production = create_app({
        **settings, "ENV": "production", "ISSUER": "https://idp.example.cn",
        "DATABASE_URL": "postgresql+psycopg://idp@127.0.0.1:1/unused", "SECRET_KEY": "s" * 48,
        "SMS_GATEWAY": "http", "SMS_HTTP_URL": "https://sms.example.cn/send", "SMS_HTTP_SECRET": SECRET,
        "VERIFIER": "http", "VERIFIER_URL": "https://verify.example.cn/check", "VERIFIER_SECRET": SECRET,
    }, clock=clock)
    assert production.test_client().get("/dev/sms-outbox").status_code == 404


# --- the HTTP gateway ------------------------------------------------------------------------


class Gateway:
    """A real HTTP server playing the SMS operator: checks signatures, records messages."""

    def __init__(self) -> None:
        self.mode = "ok"  # ok | error | slow | not_found | no_id | not_json
        self.received: list[dict] = []
        self.release = threading.Event()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_POST(self):
                import time

                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                valid = signing.verify(SECRET, self.headers.get("X-IDP-Timestamp"),
                                       self.headers.get("X-IDP-Signature"), body, time.time())
                gateway.received.append({"valid": valid, "body": json.loads(body), "path": self.path,
                                         "content_type": self.headers.get("Content-Type")})
                if gateway.mode == "slow":
                    gateway.release.wait(2)
                if not valid:
                    return self._answer(401, {"error": "bad signature"})
                if gateway.mode == "error":
                    return self._answer(500, {"error": "operator down"})
                if gateway.mode == "not_found":
                    return self._answer(404, {"message_id": "ignored"})
                if gateway.mode == "no_id":
                    return self._answer(200, {})
                if gateway.mode == "not_json":
                    return self._answer(200, b"<html>ok</html>")
                self._answer(200, {"message_id": f"gw-{len(gateway.received)}"})

            def _answer(self, status: int, data) -> None:
                payload = data if isinstance(data, bytes) else json.dumps(data).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout test)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms/send"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.release.set()
            self.server.shutdown()
            self.server.server_close()
            self.running = False


@pytest.fixture
def gateway():
    server = Gateway()
    yield server
    server.stop()


class TestHttpGateway:
    @pytest.fixture
    def settings(self, settings, gateway):
        return {**settings, "SMS_GATEWAY": "http", "SMS_HTTP_URL": gateway.url,
                "SMS_HTTP_SECRET": SECRET, "SMS_HTTP_TIMEOUT": 0.5}

    def test_a_code_is_delivered_to_the_gateway_as_signed_json(self, app, client, gateway):
        response = request_code(app, client)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["ok"] is True
        [message] = gateway.received
        assert message["valid"] is True
        assert message["path"] == "/sms/send"
        assert message["content_type"] == "application/json"
        body = message["body"]
        assert set(body) == {"request_id", "to", "template", "params"}
        assert body["to"] == PHONE
        assert body["template"] == "verification_code"
        assert re.fullmatch(r"\d{6}", body["params"]["code"])
        assert body["params"]["minutes"] == 5
        assert len(body["request_id"]) >= 16
        assert outbox_codes(app) == []  # nothing went to the development outbox
        with app.test_request_context():
            assert check_code(PHONE, PURPOSE, body["params"]["code"]) is None

    def test_each_message_has_its_own_request_id(self, app, client, gateway, clock):
        assert request_code(app, client).status_code == 200
        clock.advance(61)
        assert request_code(app, client).status_code == 200
        ids = {m["body"]["request_id"] for m in gateway.received}
        assert len(ids) == 2

    def test_the_gateways_message_id_is_recorded(self, app, client, gateway):
        assert request_code(app, client).status_code == 200
        [event] = db.session.execute(db.select(AuditEvent).filter_by(event="sms_code_sent")).scalars().all()
        assert event.details["message_id"] == "gw-1"

    def test_a_gateway_answering_500_means_sms_unavailable_and_the_retry_is_allowed(self, app, client, gateway):
        gateway.mode = "error"
        response = request_code(app, client)
        assert response.status_code == 503
        assert response.get_json()["reason"] == "sms_unavailable"
        assert len(gateway.received) == 1
        gateway.mode = "ok"
        retry = request_code(app, client)
        assert retry.status_code == 200, retry.get_json()
        assert len(gateway.received) == 2
        code = gateway.received[-1]["body"]["params"]["code"]
        with app.test_request_context():
            assert check_code(PHONE, PURPOSE, code) is None

    def test_an_unavailable_gateway_is_audited_with_a_masked_phone(self, app, client, gateway):
        gateway.mode = "error"
        assert request_code(app, client).status_code == 503
        [event] = db.session.execute(db.select(AuditEvent).filter_by(event="sms_unavailable")).scalars().all()
        assert event.outcome == "failure"
        assert event.details["purpose"] == PURPOSE
        assert event.subject == "138****8000"
        assert PHONE not in json.dumps(event.details)
        assert not db.session.execute(db.select(AuditEvent).filter_by(event="sms_code_sent")).scalars().all()

    def test_a_gateway_not_answering_in_time_means_sms_unavailable(self, app, client, gateway):
        import time

        gateway.mode = "slow"
        started = time.monotonic()
        response = request_code(app, client)
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.get_json()["reason"] == "sms_unavailable"
        assert elapsed < 1.9  # gave up after SMS_HTTP_TIMEOUT, did not wait for the answer
        gateway.release.set()
        gateway.mode = "ok"
        assert request_code(app, client).status_code == 200

    def test_a_refused_connection_means_sms_unavailable_and_the_retry_is_allowed(self, app, client, gateway):
        gateway.stop()
        response = request_code(app, client)
        assert response.status_code == 503
        assert response.get_json()["reason"] == "sms_unavailable"
        with app.test_request_context():
            again = send()
        assert (again.sent, again.reason) == (False, "sms_unavailable")  # not resend_too_soon

    def test_a_failed_send_leaves_no_usable_code_and_does_not_count_against_the_caps(self, app, client, gateway):
        gateway.mode = "error"
        with app.test_request_context():
            for _ in range(app.config["SMS_MAX_PER_PHONE_PER_DAY"] + 1):
                assert send().reason == "sms_unavailable"
            assert check_code(PHONE, PURPOSE, "000000") == "sms_code_missing_or_expired"
            gateway.mode = "ok"
            assert send().sent

    def test_a_code_the_gateway_failed_to_send_is_not_retried_by_a_job(self, app, client, gateway):
        """Unlike a notice (idp.notices) a code is never queued: the user asks again, and the
        failed send consumed nothing (no stored code, no resend wait, no cap counted)."""
        from idp import jobs
        from idp.models.oauth import Job

        gateway.mode = "error"
        assert request_code(app, client).status_code == 503
        assert db.session.execute(db.select(Job)).scalars().all() == []
        assert jobs.run_due() == 0 and len(gateway.received) == 1
        with app.test_request_context():
            assert check_code(PHONE, PURPOSE, "000000") == "sms_code_missing_or_expired"
        gateway.mode = "ok"
        again = request_code(app, client)
        assert again.status_code == 200, again.get_json()  # at once: no resend wait was started

    @pytest.mark.parametrize("mode", ["no_id", "not_json", "not_found"])
    def test_an_answer_that_is_not_a_2xx_with_message_id_is_a_failed_send(self, app, client, gateway, mode):
        gateway.mode = mode
        response = request_code(app, client)
        assert response.status_code == 503
        assert response.get_json()["reason"] == "sms_unavailable"
        gateway.mode = "ok"
        assert request_code(app, client).status_code == 200

    def test_the_signature_check_rejects_a_changed_body_or_an_old_timestamp(self):
        import time

        now = int(time.time())
        body = b'{"to": "13800138000"}'
        headers = signing.signed_headers(SECRET, now, body)
        assert signing.verify(SECRET, headers["X-IDP-Timestamp"], headers["X-IDP-Signature"], body, now)
        assert not signing.verify(SECRET, headers["X-IDP-Timestamp"], headers["X-IDP-Signature"],
                                  body.replace(b"138", b"139"), now)
        assert not signing.verify("other", headers["X-IDP-Timestamp"], headers["X-IDP-Signature"], body, now)
        assert not signing.verify(SECRET, headers["X-IDP-Timestamp"], headers["X-IDP-Signature"], body,
                                  now + 301)


# --- audit of refused codes and captchas ---------------------------------------------------------


def audit(name: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.execute(db.select(AuditEvent).filter_by(event=name).order_by(AuditEvent.id)).scalars())


def test_a_wrong_sms_code_is_audited_with_a_masked_phone_and_never_the_code(app):
    with app.test_request_context():
        send()
        code = last_code(app)
        assert check_code(PHONE, PURPOSE, wrong(code)) == "sms_code_wrong"
    [event] = audit("sms_code_rejected")
    assert event.outcome == "failure"
    assert event.subject == "138****8000"
    assert event.details["reason"] == "sms_code_wrong"
    assert event.details["purpose"] == PURPOSE
    assert event.details["attempts"] == 1 and event.details["voided"] is False
    dumped = json.dumps(event.details)
    assert code not in dumped and wrong(code) not in dumped and PHONE not in dumped


def test_the_wrong_entry_that_voids_a_code_is_audited_as_such(app):
    attempts = app.config["SMS_CODE_MAX_ATTEMPTS"]
    with app.test_request_context():
        send()
        for _ in range(attempts):
            check_code(PHONE, PURPOSE, wrong(last_code(app)))
    events = audit("sms_code_rejected")
    assert [e.details["voided"] for e in events] == [False] * (attempts - 1) + [True]


def test_a_code_never_sent_or_expired_is_audited(app, clock):
    with app.test_request_context():
        assert check_code(PHONE, PURPOSE, "123456") == "sms_code_missing_or_expired"
    [event] = audit("sms_code_rejected")
    assert event.details["reason"] == "sms_code_missing_or_expired"


def test_a_wrong_code_at_registration_is_audited(app, client):
    from tests.integration.test_registration import (
        fresh_code,
        natural_data,
        post_registration,
    )

    code = fresh_code(app, client, PHONE)
    assert post_registration(client, "natural", natural_data(wrong(code))).status_code == 400
    [event] = audit("sms_code_rejected")
    assert event.details["reason"] == "sms_code_wrong"


def test_a_wrong_captcha_before_sending_is_audited_with_its_purpose(app, client):
    solve_captcha(app, client, "sms")
    assert request_code(app, client, captcha="ZZZZ").status_code == 400
    [event] = audit("captcha_failed")
    assert event.outcome == "failure"
    assert event.details == {"purpose": "sms", "reason": "wrong_or_expired"}
    assert "ZZZZ" not in json.dumps(event.details)


def test_a_right_captcha_is_not_audited_as_failed(app, client):
    assert request_code(app, client).status_code == 200
    assert audit("captcha_failed") == []


# --- the send-code answer names the field and the reason --------------------------------------


@pytest.mark.parametrize("captcha", ["A" * 11, "AB\u202eCD"], ids=["too long", "format character"])
def test_a_captcha_that_cannot_be_an_answer_is_captcha_wrong_at_the_captcha(app, client, captcha):
    response = request_code(app, client, captcha=captcha)
    assert response.status_code == 400
    body = response.get_json()
    assert body["reason"] == "captcha_wrong"
    assert body["fields"] == {"captcha": "captcha_wrong"}
    assert set(body["errors"]) == {"captcha"}
    assert outbox_codes(app) == []


def test_an_empty_captcha_is_captcha_wrong_at_the_captcha(app, client):
    solve_captcha(app, client, "sms")
    response = request_code(app, client, captcha="")
    assert response.status_code == 400
    body = response.get_json()
    assert (body["reason"], body["fields"]) == ("captcha_wrong", {"captcha": "captcha_wrong"})


def test_a_malformed_phone_is_invalid_phone_at_the_phone_only(app, client):
    response = request_code(app, client, "12800138000")
    body = response.get_json()
    assert (body["reason"], body["fields"]) == ("invalid_phone", {"phone": "invalid_phone"})
    assert body["message"] == body["errors"]["phone"][0]


def test_a_bad_phone_and_a_bad_captcha_are_both_named(app, client):
    response = request_code(app, client, "12800138000", captcha="A" * 11)
    body = response.get_json()
    assert body["fields"] == {"phone": "invalid_phone", "captcha": "captcha_wrong"}
    assert body["reason"] == "invalid_phone"


def test_send_code_with_an_expired_form_answers_the_error_page_not_json(app, client):
    """The page's script shows its own "page expired" text for any answer that is not JSON."""
    response = client.post("/register/send-code", data={"phone": PHONE, "captcha": "ABCD",
                                                        "csrf_token": "expired"})
    assert response.status_code == 400
    assert not response.is_json
    assert 'data-reason="csrf_failed"' in response.get_data(as_text=True)


def test_the_registration_page_carries_the_scripts_messages_in_the_users_language(app, client):
    page = client.get("/register/natural?lang=en").get_data(as_text=True)
    button = re.search(r'<button[^>]*id="send-code"[^>]*>', page).group(0)
    assert 'data-expired="The page has expired. Please reload it and try again."' in button
    assert 'data-failed="The code could not be requested. Please check your connection and try again."' in button
