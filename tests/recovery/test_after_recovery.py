"""After any recovery every credential of the account is dead (sessions, refresh and access
tokens, with back-channel logouts delivered to a real HTTP server); sends are capped under a
burst; the HTTP SMS gateway (a real server) delivers recovery codes, and its failure is a clear
message that spends nothing."""

from __future__ import annotations

import pytest

from idp.extensions import db
from tests.admin.conftest import rp  # noqa: F401 (fixture)
from tests.admin.test_credential_liveness import (  # noqa: F401 (fixtures)
    assert_all_alive, assert_everything_dead, everything_of_one_sign_in, make_client, systems,
)
from tests.conftest import make_account, reason_of
from tests.integration.test_sms import SECRET, gateway  # noqa: F401 (fixture)
from tests.oidc.test_backchannel_logout import receiver  # noqa: F401 (fixture)
from tests.recovery.conftest import NEW_PASSWORD, PHONE, last_code, look_up, outbox, reset, send_code
from tests.recovery.test_mail import ask_link, link_path, use_link
from tests.recovery.test_reset_by_phone import password_is


@pytest.fixture
def settings(settings, request):
    settings.update({"CAPTCHA": "off", "JOBS_INLINE": True, "RECOVERY_ANSWER_FLOOR": 0})
    if "gateway" in request.fixturenames:
        server = request.getfixturevalue("gateway")
        settings.update({"SMS_GATEWAY": "http", "SMS_HTTP_URL": server.url, "SMS_HTTP_SECRET": SECRET,
                         "SMS_HTTP_TIMEOUT": 0.5})
    return settings


@pytest.fixture
def person(app):
    account = make_account("natural", "zhang_san", name="张三", email="zhangsan@example.cn")
    account.email_verified = True
    db.session.commit()
    return account


def test_a_reset_by_sms_ends_every_session_and_token(app, client, rp, systems, receiver, person):
    held = everything_of_one_sign_in(rp, systems)
    assert_all_alive(rp, systems, held)
    look_up(app, client, "zhang_san")
    send_code(client)
    assert reset(client, last_code(app)).status_code == 302
    assert_everything_dead(rp, systems, receiver, person, held)


def test_a_reset_by_link_ends_every_session_and_token(app, client, rp, systems, receiver, person):
    held = everything_of_one_sign_in(rp, systems)
    look_up(app, client, "zhang_san")
    ask_link(client)
    assert use_link(client, link_path(app)).status_code == 302
    assert_everything_dead(rp, systems, receiver, person, held)


def test_sends_are_capped_under_a_burst(app, client, clock, person):
    app.config["SMS_MAX_PER_PHONE_PER_DAY"] = 3
    answers = []
    for _ in range(8):
        look_up(app, client, "zhang_san")
        answers.append(send_code(client))
        clock.advance(61)  # past the resend wait: only the daily cap stops the burst
    assert [reason_of(a) for a in answers[:3]] == ["sent"] * 3
    assert all(a.status_code == 429 and reason_of(a) == "phone_daily_cap" for a in answers[3:])
    assert len([m for m in outbox(app) if m["template"] == "verification_code"]) == 3


def test_sends_per_address_per_day_are_capped_across_phones(app, client, clock, person):
    app.config["RECOVERY_SENDS_PER_ADDRESS_PER_DAY"] = 4
    answers = []
    for n in range(6):
        look_up(app, client, "zhang_san")
        answers.append(send_code(client, f"1390013900{n}"))
    assert [reason_of(a) for a in answers] == ["sent"] * 4 + ["address_cap"] * 2


def test_a_resend_within_the_minute_is_refused(app, client, person):
    look_up(app, client, "zhang_san")
    send_code(client)
    again = send_code(client)
    assert again.status_code == 429 and reason_of(again) == "resend_too_soon"


def test_the_http_gateway_delivers_the_recovery_code(app, client, gateway, person):
    look_up(app, client, "zhang_san")
    assert reason_of(send_code(client)) == "sent"
    [message] = gateway.received
    assert message["valid"] and message["body"]["to"] == PHONE
    code = message["body"]["params"]["code"]
    assert reset(client, code).status_code == 302
    assert password_is(person.id, NEW_PASSWORD)
    assert gateway.received[-1]["body"]["template"] == "password_recovered"


def test_a_failing_gateway_gives_a_clear_message_and_spends_nothing(app, client, clock, gateway, person):
    app.config["SMS_MAX_PER_PHONE_PER_DAY"] = 1
    look_up(app, client, "zhang_san")
    gateway.mode = "error"
    failed = send_code(client)
    assert failed.status_code == 503 and reason_of(failed) == "sms_unavailable"
    assert "短信服务暂不可用" in failed.get_data(as_text=True) or "短信" in failed.get_data(as_text=True)
    gateway.mode = "ok"
    retried = send_code(client)  # no resend wait, and the daily cap of one is still whole
    assert reason_of(retried) == "sent"
    code = gateway.received[-1]["body"]["params"]["code"]
    assert reset(client, code).status_code == 302
