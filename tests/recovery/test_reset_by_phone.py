"""登录名重置密码 by SMS code, for persons and units: every step, and every bad input."""

from __future__ import annotations

import pytest

from idp.extensions import db, services
from idp.models.accounts import DISABLED, Account
from tests.conftest import PASSWORD, audit_events, login, make_account, reason_of
from tests.recovery.conftest import NEW_PASSWORD, PHONE, UNIT, last_code, look_up, outbox, reset, send_code


def password_is(account_id: int, password: str) -> bool:
    db.session.expire_all()
    account = db.session.get(Account, account_id)
    return services().passwords.verify(account.password_hash, password)


def test_the_chooser_shows_the_three_ways(client):
    page = client.get("/password/forgot").get_data(as_text=True)
    assert client.get("/password/forgot").status_code == 200
    for text in ("登录名重置密码", "单位法人用户申诉找回密码", "自然人申诉找回密码",
                 "您需要知道登录名和预留手机号才能进行重置密码"):
        assert text in page
    assert client.get("/recovery").headers["Location"].endswith("/password/forgot")


def test_the_login_page_links_the_chooser(client):
    assert "/password/forgot" in client.get("/login").get_data(as_text=True)


def test_a_person_resets_the_password_step_by_step(app, client):
    account = make_account()
    step1 = look_up(app, client, "zhang_san")
    assert step1.status_code == 302 and step1.headers["Location"].endswith("/password/reset")
    page = client.get("/password/reset").get_data(as_text=True)
    assert "预留手机号" in page and "zhang_san" in page
    sent = send_code(client)
    assert sent.status_code == 200 and reason_of(sent) == "sent"
    code = last_code(app)
    done = reset(client, code)
    assert done.status_code == 302 and done.headers["Location"].endswith("/password/reset/done")
    finished = client.get("/password/reset/done").get_data(as_text=True)
    assert "重置密码已完成" in finished and "确定，并跳转至政务服务平台" in finished
    assert password_is(account.id, NEW_PASSWORD)
    assert not password_is(account.id, PASSWORD)
    # not signed in automatically
    assert client.get("/center/profile").status_code == 302
    [event] = audit_events("password_recovered")
    assert event.subject == "zhang_san" and event.details["method"] == "sms"
    assert [m["template"] for m in outbox(app)][-1] == "password_recovered"
    assert login(app, client, "zhang_san", NEW_PASSWORD).status_code == 302


def test_a_unit_resets_with_unit_name_and_uscc(app, client):
    account = make_account("legal", "fz_unit")
    look_up(app, client, "fz_unit", "legal")
    assert "统一社会信用代码" in client.get("/password/reset").get_data(as_text=True)
    send_code(client, **UNIT)
    code = last_code(app)
    assert code
    assert reset(client, code, **UNIT).status_code == 302
    assert password_is(account.id, NEW_PASSWORD)


@pytest.mark.parametrize("unit", [{"org_name": "别的公司", "uscc": UNIT["uscc"]},
                                  {"org_name": UNIT["org_name"], "uscc": "91110000600037341L"}])
def test_a_uscc_or_unit_name_mismatch_is_answered_like_a_match(app, client, clock, unit):
    make_account("legal", "fz_unit")
    look_up(app, client, "fz_unit", "legal")
    matched_answer = send_code(client, **UNIT)
    assert last_code(app)
    clock.advance(61)  # the resend wait
    look_up(app, client, "fz_unit", "legal")
    before = len(outbox(app))
    mismatch = send_code(client, **unit)
    assert len(outbox(app)) == before  # nothing sent
    assert mismatch.status_code == matched_answer.status_code
    assert reason_of(mismatch) == reason_of(matched_answer)


def _answer(response) -> str:
    import re

    text = response.get_data(as_text=True)
    text = re.sub(r'name="csrf_token" (type="hidden" )?value="[^"]+"', "", text)
    return re.sub(r'value="[^"]*"', "", text)


def test_a_phone_mismatch_or_unknown_login_name_answers_the_same(app, client):
    make_account()
    look_up(app, client, "zhang_san")
    matched = send_code(client)
    assert len(outbox(app)) == 1
    look_up(app, client, "zhang_san")
    other_phone = send_code(client, "13900139000")
    look_up(app, client, "nobody_here")
    unknown = send_code(client, "13700137000")
    assert len(outbox(app)) == 1
    assert matched.status_code == other_phone.status_code == unknown.status_code == 200
    strip = lambda r: _answer(r).replace("nobody_here", "zhang_san")  # noqa: E731
    assert _answer(matched) == _answer(other_phone) == strip(unknown)
    # and the final step answers alike too
    wrong = reset(client, "123456", "13700137000")
    assert reason_of(wrong) == "details_or_code_wrong"


def test_a_match_and_a_mismatch_both_wait_out_the_answer_floor(app, client):
    """The floor is what makes the two answers alike in time; how alike, on a given machine, is
    a measurement, not a test (timed assertions fail on a loaded machine)."""
    import time

    app.config["RECOVERY_ANSWER_FLOOR"] = 0.3
    make_account()
    look_up(app, client, "zhang_san")
    started = time.monotonic()
    send_code(client)
    matched = time.monotonic() - started
    look_up(app, client, "zhang_san")
    started = time.monotonic()
    send_code(client, "13900139000")
    mismatched = time.monotonic() - started
    assert matched >= 0.3 and mismatched >= 0.3


def test_a_wrong_code_changes_nothing_and_five_void_it(app, client):
    account = make_account()
    look_up(app, client, "zhang_san")
    send_code(client)
    code = last_code(app)
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    for _ in range(5):
        response = reset(client, wrong)
        assert response.status_code == 400 and reason_of(response) == "details_or_code_wrong"
    assert reason_of(reset(client, code)) == "details_or_code_wrong"  # voided
    assert password_is(account.id, PASSWORD)


def test_an_expired_code_is_refused(app, client, clock):
    account = make_account()
    look_up(app, client, "zhang_san")
    send_code(client)
    clock.advance(301)
    assert reason_of(reset(client, last_code(app))) == "details_or_code_wrong"
    assert password_is(account.id, PASSWORD)


def test_a_code_is_used_once(app, client):
    account = make_account()
    look_up(app, client, "zhang_san")
    send_code(client)
    code = last_code(app)
    assert reset(client, code).status_code == 302
    look_up(app, client, "zhang_san")
    assert reason_of(reset(client, code, password="Another-0ne!")) == "details_or_code_wrong"
    assert password_is(account.id, NEW_PASSWORD)


def test_codes_are_stored_hashed(app, client):
    make_account()
    look_up(app, client, "zhang_san")
    send_code(client)
    code = last_code(app)
    with app.test_request_context():
        ident = services().keyring.index(PHONE, "phone")
        stored = services().store.get(f"smscode:reset:natural:zhang_san:{ident}")
    assert stored and code.encode() not in stored and b"hash" in stored


@pytest.mark.parametrize(("password", "reason"), [("short1A", "password_too_short"),
                                                  ("alllowercase", "password_too_simple"),
                                                  ("Zhang_San", "password_equals_login_name")])
def test_a_password_that_breaks_the_policy_is_refused(app, client, password, reason):
    account = make_account()
    look_up(app, client, "zhang_san")
    send_code(client)
    response = reset(client, last_code(app), password=password)
    assert response.status_code == 400
    assert 'id="new_password-error"' in response.get_data(as_text=True)
    assert password_is(account.id, PASSWORD)


def test_the_two_phones_and_passwords_must_agree(app, client):
    make_account()
    look_up(app, client, "zhang_san")
    response = send_code(client, PHONE, "13900139000")
    assert response.status_code == 400 and 'id="phone_confirm-error"' in response.get_data(as_text=True)
    assert not outbox(app)
    send_code(client)
    response = reset(client, last_code(app), confirm="Different-9!")
    assert response.status_code == 400 and 'id="new_password_confirm-error"' in response.get_data(as_text=True)


def test_a_disabled_account_cannot_recover_and_is_told_to_contact_support(app, client):
    account = make_account()
    account.status = DISABLED
    db.session.commit()
    look_up(app, client, "zhang_san")
    send_code(client)
    response = reset(client, last_code(app))
    assert response.status_code == 403 and reason_of(response) == "account_disabled"
    assert "010-88659000" in response.get_data(as_text=True)
    assert password_is(account.id, PASSWORD)


def test_a_locked_account_recovers_and_the_lock_ends(app, client):
    make_account()
    for _ in range(5):
        login(app, client, "zhang_san", "Wrong-pass1")
    assert "锁定" in login(app, client, "zhang_san", PASSWORD).get_data(as_text=True)
    look_up(app, client, "zhang_san")
    send_code(client)
    assert reset(client, last_code(app)).status_code == 302
    assert login(app, client, "zhang_san", NEW_PASSWORD).status_code == 302


def test_step_two_without_step_one_goes_back_to_step_one(client):
    response = client.post("/password/reset", data={})
    assert response.status_code in (302, 400)


def test_look_ups_are_throttled_per_address(app, client):
    app.config["RECOVERY_LOOKUPS_PER_ADDRESS"] = 3
    for _ in range(3):
        assert look_up(app, client, "zhang_san").status_code == 302
    response = look_up(app, client, "zhang_san")
    assert response.status_code == 429 and reason_of(response) == "lookup_throttled"


def test_a_wrong_captcha_is_refused_at_look_up(app, client):
    from tests.conftest import csrf_token

    token = csrf_token(client, "/password/reset?restart=1")
    response = client.post("/password/reset", data={"csrf_token": token, "account_type": "natural",
                                                    "login_name": "zhang_san", "captcha": "nope"})
    assert response.status_code == 400 and 'id="captcha-error"' in response.get_data(as_text=True)
