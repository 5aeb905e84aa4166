"""The login page (统一用户登录): credentials, tabs, lockout, throttling, captcha, logout.

Assertions use reason codes (``data-reason``), status codes and the database / store state,
never the wording of messages (except "锁定", which INTERFACES.md requires).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from idp.extensions import db
from idp.models.accounts import PENDING_REVIEW
from tests.conftest import PASSWORD, csrf_token, login, make_account, session_data, solve_captcha, reason_of
from tests.conftest import audit_events as events

WRONG = "Wr0ng!pass"


# --- helpers -----------------------------------------------------------------------------


@pytest.fixture
def settings(settings, request):
    """Per-test setting overrides through ``@pytest.mark.parametrize("settings", …, indirect=True)``."""
    settings.update(getattr(request, "param", {}))
    return settings



def store(app):
    return app.extensions["idp.services"].store


def location_path(response) -> str:
    return urlsplit(response.headers["Location"]).path


def post_login(app, client, login_name, password=PASSWORD, account_type="natural", *,
               page="/login", captcha=None, environ_base=None, with_captcha=True):
    """Like conftest.login, but lets a test choose the page (``?next=``) and the address."""
    kwargs = {"environ_base": environ_base} if environ_base else {}
    token = csrf_token(client, page) if not environ_base else _token(client, page, environ_base)
    data = {"csrf_token": token, "account_type": account_type, "login_name": login_name,
            "password": password}
    if with_captcha:
        data["captcha"] = solve_captcha(app, client) if captcha is None else captcha
    return client.post("/login", data=data, **kwargs)


def _token(client, page, environ_base):
    text = client.get(page, environ_base=environ_base).get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', text).group(1)


def account_failures(app, account) -> int:
    return store(app).count(f"rl:login_account:{account.id}")


def address_failures(app, address="127.0.0.1") -> int:
    return store(app).count(f"rl:login_address:{address}")


def signed_in(app, client) -> bool:
    return bool(session_data(app, client).get("account_id"))


def shanghai(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc).astimezone(ZoneInfo("Asia/Shanghai"))


# --- the page ----------------------------------------------------------------------------


def test_login_page_shows_both_tabs(client):
    response = client.get("/login")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'data-tab="natural"' in page
    assert 'data-tab="legal"' in page


@pytest.mark.parametrize("name", ["account_type", "login_name", "password", "captcha", "csrf_token"])
def test_login_form_posts_the_interface_field_names(client, name):
    page = client.get("/login").get_data(as_text=True)
    assert re.search(r'<form[^>]*method="post"[^>]*action="/login"', page)
    assert f'name="{name}"' in page


def test_the_legal_tab_is_preselected_by_type_parameter(client):
    page = client.get("/login?type=legal").get_data(as_text=True)
    assert re.search(r'name="account_type"[^>]*value="legal"|value="legal"[^>]*name="account_type"', page)


# --- success and the session -------------------------------------------------------------


def test_correct_credentials_redirect_to_the_user_centre(app, client):
    make_account()
    response = login(app, client, "zhang_san")
    assert response.status_code == 302
    assert location_path(response) == "/center/profile"
    assert client.get("/center/profile").status_code == 200
    data = session_data(app, client)
    assert data["login_name"] == "zhang_san"
    # The sign-in's record holds the account type and methods (no copies beside it).
    assert data["authentication"]["account_type"] == "natural"
    assert data["authentication"]["amr"] == ["pwd"]
    assert "amr" not in data and "account_type" not in data


def test_legal_account_signs_in_on_the_legal_tab(app, client):
    make_account("legal", login_name="fz_unit")
    response = login(app, client, "fz_unit", account_type="legal")
    assert response.status_code == 302
    assert session_data(app, client)["authentication"]["account_type"] == "legal"


def test_the_session_id_changes_at_login_and_the_old_one_is_gone(app, client):
    make_account()
    client.get("/login")
    before = client.get_cookie("idp_session")
    assert before is not None, "the login page should already carry a (pre-login) session"
    assert store(app).get("session:" + before.value) is not None
    response = login(app, client, "zhang_san")
    assert response.status_code == 302
    after = client.get_cookie("idp_session")
    assert after is not None
    assert after.value != before.value
    assert store(app).get("session:" + before.value) is None
    assert store(app).get("session:" + after.value) is not None


def test_a_planted_session_id_is_useless_after_the_victim_signs_in(app, client):
    make_account()
    client.get("/login")
    planted = client.get_cookie("idp_session").value
    assert login(app, client, "zhang_san").status_code == 302
    attacker = app.test_client()
    attacker.set_cookie("idp_session", planted)
    response = attacker.get("/center/profile")
    assert response.status_code == 302
    assert location_path(response) == "/login"


def _session_set_cookie(response) -> str:
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("idp_session=")]
    assert headers, response.headers
    return headers[-1]


def test_session_cookie_is_httponly_lax_and_not_secure_on_an_http_issuer(app, client):
    make_account()
    header = _session_set_cookie(client.get("/login"))
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    assert "Secure" not in header
    header = _session_set_cookie(login(app, client, "zhang_san"))
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header


class TestHttpsIssuer:
    @pytest.fixture
    def settings(self, settings):
        settings["ISSUER"] = "https://idp.example.gov.cn"
        return settings

    def test_session_cookie_is_secure_when_the_issuer_is_https(self, app, client):
        make_account()
        header = _session_set_cookie(client.get("/login", base_url="https://localhost"))
        assert "Secure" in header
        assert "HttpOnly" in header
        assert "SameSite=Lax" in header
        token = csrf_token(client, "/login")
        answer = solve_captcha(app, client)
        response = client.post("/login", base_url="https://localhost", data={
            "csrf_token": token, "account_type": "natural", "login_name": "zhang_san",
            "password": PASSWORD, "captcha": answer,
        })
        assert response.status_code == 302, response.get_data(as_text=True)
        header = _session_set_cookie(response)
        assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header

    def test_the_language_cookie_is_secure_too(self, client):
        response = client.get("/login?lang=en", base_url="https://localhost")
        header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("idp_lang="))
        assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header


# --- wrong credentials -------------------------------------------------------------------


def test_a_wrong_password_is_refused_with_invalid_credentials(app, client):
    make_account()
    response = login(app, client, "zhang_san", WRONG)
    assert response.status_code == 401
    assert reason_of(response) == "invalid_credentials"
    assert not signed_in(app, client)


def test_an_unknown_login_name_gets_the_same_reason(app, client):
    make_account()
    known = login(app, client, "zhang_san", WRONG)
    unknown = login(app, client, "nobody_here", WRONG)
    assert unknown.status_code == known.status_code == 401
    assert reason_of(unknown) == reason_of(known) == "invalid_credentials"
    assert not signed_in(app, client)


def test_the_password_is_case_sensitive(app, client):
    make_account()
    response = login(app, client, "zhang_san", PASSWORD.swapcase())
    assert reason_of(response) == "invalid_credentials"


def test_the_password_is_not_echoed_back(app, client):
    make_account()
    page = login(app, client, "zhang_san", "S3cret!Echo").get_data(as_text=True)
    assert "S3cret!Echo" not in page


# --- tabs --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, wrong_tab", [("natural", "legal"), ("legal", "natural")])
def test_the_right_password_on_the_wrong_tab_is_refused_with_wrong_account_type(app, client, kind,
                                                                                 wrong_tab):
    make_account(kind, login_name="tab_user")
    response = login(app, client, "tab_user", account_type=wrong_tab)
    assert response.status_code == 401
    assert reason_of(response) == "wrong_account_type"
    assert not signed_in(app, client)


@pytest.mark.parametrize("kind, wrong_tab", [("natural", "legal"), ("legal", "natural")])
def test_a_wrong_password_on_the_wrong_tab_is_only_invalid_credentials(app, client, kind, wrong_tab):
    make_account(kind, login_name="tab_user")
    response = login(app, client, "tab_user", WRONG, account_type=wrong_tab)
    assert response.status_code == 401
    assert reason_of(response) == "invalid_credentials"


def test_an_unknown_account_type_is_a_form_error(app, client):
    make_account()
    response = login(app, client, "zhang_san", account_type="admin")
    assert response.status_code == 400
    assert not signed_in(app, client)


# --- login name normalisation ------------------------------------------------------------


@pytest.mark.parametrize("typed", [
    "ZHANG_SAN", "Zhang_San", "  zhang_san  ", "\tzhang_san ", "ｚｈａｎｇ＿ｓａｎ", "ＺＨＡＮＧ＿ＳＡＮ",
    "\u3000zhang_san\u3000",
])
def test_the_login_name_is_matched_case_insensitively_trimmed_and_normalised(app, client, typed):
    make_account(login_name="zhang_san")
    response = login(app, client, typed)
    assert response.status_code == 302, reason_of(response)
    assert session_data(app, client)["login_name"] == "zhang_san"


def test_an_account_registered_with_capitals_accepts_lower_case(app, client):
    make_account(login_name="Li_Si_2024")
    assert login(app, client, "li_si_2024").status_code == 302


# --- lockout -----------------------------------------------------------------------------


def _fail(app, client, times, login_name="zhang_san"):
    return [login(app, client, login_name, WRONG) for _ in range(times)]


def test_five_failures_lock_the_account(app, client, clock):
    account = make_account()
    responses = _fail(app, client, 5)
    assert [reason_of(r) for r in responses[:4]] == ["invalid_credentials"] * 4
    assert reason_of(responses[4]) == "account_locked"
    assert responses[4].status_code == 401
    assert store(app).ttl(f"lock:account:{account.id}") == pytest.approx(app.config["LOGIN_LOCK_SECONDS"])
    assert not signed_in(app, client)


def test_the_locked_page_shows_when_the_lock_ends(app, client, clock):
    make_account()
    start = clock.time()
    locked = _fail(app, client, 5)[-1]
    page = locked.get_data(as_text=True)
    until = shanghai(start + app.config["LOGIN_LOCK_SECONDS"])
    assert until.strftime("%Y-%m-%d %H:%M") in page


def test_the_locked_page_says_locked_in_chinese(app, client):
    make_account()
    locked = _fail(app, client, 5)[-1]
    assert reason_of(locked) == "account_locked"
    assert "锁定" in locked.get_data(as_text=True)


def test_the_right_password_is_refused_while_locked(app, client, clock):
    make_account()
    _fail(app, client, 5)
    clock.advance(app.config["LOGIN_LOCK_SECONDS"] - 1)
    response = login(app, client, "zhang_san")
    assert response.status_code == 401
    assert reason_of(response) == "account_locked"
    assert not signed_in(app, client)


def test_the_lock_ends_after_its_time(app, client, clock):
    make_account()
    _fail(app, client, 5)
    clock.advance(app.config["LOGIN_LOCK_SECONDS"] + 1)
    response = login(app, client, "zhang_san")
    assert response.status_code == 302, reason_of(response)
    assert signed_in(app, client)


def test_after_the_lock_ends_the_failure_count_starts_again(app, client, clock):
    make_account()
    _fail(app, client, 5)
    clock.advance(app.config["LOGIN_LOCK_SECONDS"] + 1)
    assert reason_of(login(app, client, "zhang_san", WRONG)) == "invalid_credentials"


def test_the_lock_is_per_account(app, client):
    make_account()
    make_account(login_name="li_si", phone="13900139000")
    _fail(app, client, 5)
    assert login(app, client, "li_si").status_code == 302


def test_the_lock_applies_whatever_the_spelling_of_the_login_name(app, client):
    make_account()
    for typed in ["zhang_san", "ZHANG_SAN", " Zhang_San", "ｚｈａｎｇ＿ｓａｎ", "zhang_SAN"]:
        last = login(app, client, typed, WRONG)
    assert reason_of(last) == "account_locked"
    assert reason_of(login(app, client, "zhang_san")) == "account_locked"


def test_a_successful_login_resets_the_failure_count(app, client):
    account = make_account()
    _fail(app, client, 4)
    assert account_failures(app, account) == 4
    assert login(app, client, "zhang_san").status_code == 302
    assert account_failures(app, account) == 0
    other = app.test_client()
    responses = _fail(app, other, 4)
    assert [reason_of(r) for r in responses] == ["invalid_credentials"] * 4


def test_failures_older_than_the_window_do_not_count(app, client, clock):
    account = make_account()
    _fail(app, client, 4)
    clock.advance(app.config["LOGIN_FAILURE_WINDOW"] + 1)
    assert reason_of(login(app, client, "zhang_san", WRONG)) == "invalid_credentials"
    assert account_failures(app, account) == 1
    assert login(app, client, "zhang_san").status_code == 302


def test_successful_logins_are_never_counted(app, client):
    account = make_account()
    for _ in range(8):
        fresh = app.test_client()
        assert login(app, fresh, "zhang_san").status_code == 302
    assert account_failures(app, account) == 0
    assert address_failures(app) == 0


class TestConfiguredLockout:
    @pytest.fixture
    def settings(self, settings):
        settings.update(LOGIN_MAX_FAILURES=3, LOGIN_LOCK_SECONDS=120, LOGIN_FAILURE_WINDOW=60)
        return settings

    def test_the_threshold_is_a_setting(self, app, client):
        make_account()
        responses = _fail(app, client, 3)
        assert [reason_of(r) for r in responses] == [
            "invalid_credentials", "invalid_credentials", "account_locked"]

    def test_the_lock_time_is_a_setting(self, app, client, clock):
        make_account()
        _fail(app, client, 3)
        clock.advance(119)
        assert reason_of(login(app, client, "zhang_san")) == "account_locked"
        clock.advance(2)
        assert login(app, client, "zhang_san").status_code == 302

    def test_the_window_is_a_setting(self, app, client, clock):
        make_account()
        _fail(app, client, 2)
        clock.advance(61)
        assert [reason_of(r) for r in _fail(app, client, 2)] == ["invalid_credentials"] * 2


# --- per-address throttle ----------------------------------------------------------------


class TestAddressThrottle:
    @pytest.fixture
    def settings(self, settings):
        settings["LOGIN_MAX_FAILURES_PER_ADDRESS"] = 4
        return settings

    def test_failures_spread_over_login_names_throttle_the_address(self, app, client):
        for name in ("wang_wu", "zhao_liu"):
            make_account(login_name=name, phone=None)
        names = ["wang_wu", "zhao_liu", "no_such_user", "another_ghost"]
        responses = [login(app, client, name, WRONG) for name in names]
        assert [reason_of(r) for r in responses] == ["invalid_credentials"] * 4
        refused = login(app, client, "wang_wu")  # even the right password
        assert refused.status_code == 429
        assert reason_of(refused) == "address_throttled"
        assert not signed_in(app, client)

    def test_the_throttle_does_not_lock_the_accounts(self, app, client, clock):
        make_account(login_name="wang_wu", phone=None)
        for name in ["a_ghost", "b_ghost", "c_ghost", "d_ghost"]:
            login(app, client, name, WRONG)
        other = app.test_client()
        response = post_login(app, other, "wang_wu", environ_base={"REMOTE_ADDR": "198.51.100.7"})
        assert response.status_code == 302, reason_of(response)

    def test_the_throttle_ends_with_its_window(self, app, client, clock):
        make_account(login_name="wang_wu", phone=None)
        for name in ["a_ghost", "b_ghost", "c_ghost", "d_ghost"]:
            login(app, client, name, WRONG)
        assert reason_of(login(app, client, "wang_wu")) == "address_throttled"
        clock.advance(app.config["LOGIN_FAILURE_WINDOW"] + 1)
        assert login(app, client, "wang_wu").status_code == 302

    def test_successes_do_not_count_towards_the_throttle(self, app, client):
        make_account(login_name="wang_wu", phone=None)
        for _ in range(6):
            assert login(app, app.test_client(), "wang_wu").status_code == 302
        assert address_failures(app) == 0


# --- captcha -----------------------------------------------------------------------------


def test_a_wrong_captcha_is_refused_before_the_password_is_checked(app, client):
    account = make_account()
    solve_captcha(app, client)
    response = login(app, client, "zhang_san", WRONG, captcha="0000")  # 0 is not in the alphabet
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'id="captcha-error"' in page
    assert account_failures(app, account) == 0
    assert address_failures(app) == 0
    assert events("login_failed") == []


def test_a_wrong_captcha_with_the_right_password_does_not_sign_in(app, client):
    make_account()
    response = login(app, client, "zhang_san", captcha="0000")
    assert response.status_code == 400
    assert not signed_in(app, client)
    assert events("login_succeeded") == []


def test_a_missing_captcha_is_refused(app, client):
    make_account()
    response = post_login(app, client, "zhang_san", with_captcha=False)
    assert response.status_code == 400
    assert 'id="captcha-error"' in response.get_data(as_text=True)
    assert not signed_in(app, client)


def test_the_captcha_answer_is_case_insensitive(app, client):
    make_account()
    token = csrf_token(client, "/login")
    answer = solve_captcha(app, client)
    response = client.post("/login", data={"csrf_token": token, "account_type": "natural",
                                           "login_name": "zhang_san", "password": PASSWORD,
                                           "captcha": f" {answer.lower()} "})
    assert response.status_code == 302


def test_a_captcha_answer_is_single_use(app, client):
    make_account()
    token = csrf_token(client, "/login")
    answer = solve_captcha(app, client)
    challenge = session_data(app, client)["captcha_login"]
    form = {"csrf_token": token, "account_type": "natural", "login_name": "zhang_san",
            "password": WRONG, "captcha": answer}
    first = client.post("/login", data=form)
    assert reason_of(first) == "invalid_credentials"
    assert app.extensions["idp.services"].captcha.peek(challenge) is None
    second = client.post("/login", data={**form, "password": PASSWORD})
    assert second.status_code == 400
    assert 'id="captcha-error"' in second.get_data(as_text=True)
    assert not signed_in(app, client)


def test_a_captcha_is_spent_by_a_wrong_answer_too(app, client):
    make_account()
    token = csrf_token(client, "/login")
    answer = solve_captcha(app, client)
    form = {"csrf_token": token, "account_type": "natural", "login_name": "zhang_san",
            "password": PASSWORD}
    assert client.post("/login", data={**form, "captcha": "0000"}).status_code == 400
    retry = client.post("/login", data={**form, "captcha": answer})
    assert retry.status_code == 400
    assert not signed_in(app, client)


def test_an_expired_captcha_is_refused(app, client, clock):
    account = make_account()
    token = csrf_token(client, "/login")
    answer = solve_captcha(app, client)
    clock.advance(301)
    response = client.post("/login", data={"csrf_token": token, "account_type": "natural",
                                           "login_name": "zhang_san", "password": PASSWORD,
                                           "captcha": answer})
    assert response.status_code == 400
    assert 'id="captcha-error"' in response.get_data(as_text=True)
    assert not signed_in(app, client)
    assert account_failures(app, account) == 0


def test_a_captcha_just_inside_its_lifetime_is_accepted(app, client, clock):
    make_account()
    token = csrf_token(client, "/login")
    answer = solve_captcha(app, client)
    clock.advance(299)
    response = client.post("/login", data={"csrf_token": token, "account_type": "natural",
                                           "login_name": "zhang_san", "password": PASSWORD,
                                           "captcha": answer})
    assert response.status_code == 302


def test_the_captcha_image_is_a_png_and_new_per_request(app, client):
    first = client.get("/captcha/login.png")
    first_challenge = session_data(app, client)["captcha_login"]
    second = client.get("/captcha/login.png")
    second_challenge = session_data(app, client)["captcha_login"]
    for response in (first, second):
        assert response.status_code == 200
        assert response.mimetype == "image/png"
        assert response.data.startswith(b"\x89PNG\r\n\x1a\n")
        assert "no-store" in response.headers["Cache-Control"]
    assert first_challenge != second_challenge
    assert first.data != second.data


def test_only_the_latest_captcha_image_counts(app, client):
    make_account()
    token = csrf_token(client, "/login")
    old_answer = solve_captcha(app, client)
    new_answer = solve_captcha(app, client)
    if old_answer == new_answer:
        pytest.skip("the two random answers happened to be equal")
    response = client.post("/login", data={"csrf_token": token, "account_type": "natural",
                                           "login_name": "zhang_san", "password": PASSWORD,
                                           "captcha": old_answer})
    assert response.status_code == 400
    assert not signed_in(app, client)


def test_an_unknown_captcha_purpose_is_404(client):
    assert client.get("/captcha/whatever.png").status_code == 404


def test_a_wrong_login_captcha_is_audited_with_its_purpose(app, client):
    make_account()
    solve_captcha(app, client)
    login(app, client, "zhang_san", captcha="0000")
    [event] = events("captcha_failed")
    assert event.outcome == "failure"
    assert event.subject == "login"
    assert event.details == {"purpose": "login", "reason": "wrong_or_expired"}
    assert event.client_address == "127.0.0.1"


def test_a_missing_login_captcha_is_audited(app, client):
    make_account()
    post_login(app, client, "zhang_san", with_captcha=False)
    [event] = events("captcha_failed")
    assert event.details["purpose"] == "login"


# --- captcha images per client address ----------------------------------------------------


def fetch_images(client, count: int, address: str = "127.0.0.1") -> list[int]:
    return [client.get("/captcha/login.png", environ_base={"REMOTE_ADDR": address}).status_code
            for _ in range(count)]


def test_an_address_gets_at_most_the_setting_of_captcha_images_per_minute(app, client, clock):
    cap = app.config["CAPTCHA_MAX_PER_ADDRESS_PER_MINUTE"]
    assert cap == 30
    assert fetch_images(client, cap) == [200] * cap
    assert fetch_images(client, 1) == [429]
    assert fetch_images(app.test_client(), 1, "198.51.100.7") == [200]  # another address
    clock.advance(61)
    assert fetch_images(client, 1) == [200]


def test_new_image_raises_captcha_throttled_with_the_time_to_wait(app, clock):
    from idp.security.captcha import CaptchaThrottled, new_image

    cap = app.config["CAPTCHA_MAX_PER_ADDRESS_PER_MINUTE"]
    with app.test_request_context():
        for _ in range(cap):
            assert new_image("sms", "203.0.113.9").startswith(b"\x89PNG")
        clock.advance(20)
        with pytest.raises(CaptchaThrottled) as throttled:
            new_image("login", "203.0.113.9")
        assert 0 < throttled.value.retry_after <= 41
        assert throttled.value.code == 429
        assert new_image("login", "203.0.113.10")


@pytest.mark.parametrize("settings", [{"CAPTCHA_MAX_PER_ADDRESS_PER_MINUTE": 2}], indirect=True)
def test_the_captcha_image_cap_is_a_setting(app, client):
    assert fetch_images(client, 3) == [200, 200, 429]


# --- session lifetimes --------------------------------------------------------------------


def session_ttl(app, client) -> float | None:
    return store(app).ttl("session:" + client.get_cookie("idp_session").value)


def cookie_max_age(response) -> int:
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("idp_session="))
    return int(re.search(r"Max-Age=(\d+)", header).group(1))


def test_an_anonymous_session_lives_only_the_anonymous_lifetime(app, client, clock):
    response = client.get("/login")
    assert app.config["ANONYMOUS_SESSION_LIFETIME"] == 1800
    assert cookie_max_age(response) == 1800
    assert session_ttl(app, client) == pytest.approx(1800)
    clock.advance(1801)
    assert session_data(app, client) == {}


def test_a_signed_in_session_lives_the_session_lifetime(app, client, clock):
    make_account()
    response = login(app, client, "zhang_san")
    assert response.status_code == 302
    assert cookie_max_age(response) == app.config["SESSION_LIFETIME"] == 28800
    assert session_ttl(app, client) == pytest.approx(28800)
    clock.advance(1801)
    assert signed_in(app, client)


def test_an_anonymous_session_in_use_is_kept_alive(app, client, clock):
    client.get("/login")
    for _ in range(3):
        clock.advance(1000)
        assert client.get("/login").status_code == 200
    assert "login_flow" in session_data(app, client)


@pytest.mark.parametrize("settings", [{"ANONYMOUS_SESSION_LIFETIME": 600}], indirect=True)
def test_the_anonymous_lifetime_is_a_setting(app, client):
    assert cookie_max_age(client.get("/login")) == 600


class TestCaptchaOff:
    @pytest.fixture
    def settings(self, settings):
        settings["CAPTCHA"] = "off"
        return settings

    def test_login_works_without_a_captcha(self, app, client):
        make_account()
        page = client.get("/login").get_data(as_text=True)
        assert 'name="captcha"' not in page
        response = post_login(app, client, "zhang_san", with_captcha=False)
        assert response.status_code == 302
        assert signed_in(app, client)

    def test_there_is_no_captcha_image(self, client):
        assert client.get("/captcha/login.png").status_code == 404

    def test_wrong_passwords_still_count(self, app, client):
        make_account()
        for _ in range(5):
            last = post_login(app, client, "zhang_san", WRONG, with_captcha=False)
        assert reason_of(last) == "account_locked"


# --- account status ----------------------------------------------------------------------


class TestRegistrationReview:
    @pytest.fixture
    def settings(self, settings):
        settings["REGISTRATION_REVIEW"] = True
        return settings

    def test_a_pending_account_is_refused_with_pending_review(self, app, client):
        account = make_account()
        assert account.status == PENDING_REVIEW
        response = login(app, client, "zhang_san")
        assert response.status_code == 401
        assert reason_of(response) == "pending_review"
        assert not signed_in(app, client)

    def test_a_pending_account_with_a_wrong_password_is_only_invalid_credentials(self, app, client):
        make_account()
        assert reason_of(login(app, client, "zhang_san", WRONG)) == "invalid_credentials"


def test_a_disabled_account_is_refused(app, client):
    account = make_account()
    account.status = "disabled"
    db.session.commit()
    response = login(app, client, "zhang_san")
    assert reason_of(response) == "account_disabled"
    assert not signed_in(app, client)


# --- logout ------------------------------------------------------------------------------


def test_the_logout_page_asks_with_a_logout_yes_button(app, client):
    make_account()
    login(app, client, "zhang_san")
    page = client.get("/logout").get_data(as_text=True)
    assert re.search(r'<button[^>]*name="logout"[^>]*value="yes"', page)
    assert re.search(r'<button[^>]*name="logout"[^>]*value="no"', page)
    assert signed_in(app, client), "GET /logout must not sign out"


def test_logout_yes_ends_the_session(app, client):
    make_account()
    login(app, client, "zhang_san")
    sid = client.get_cookie("idp_session").value
    assert store(app).get("session:" + sid) is not None
    token = csrf_token(client, "/logout")
    response = client.post("/logout", data={"csrf_token": token, "logout": "yes"})
    assert response.status_code == 302
    assert location_path(response) == "/login"
    assert store(app).get("session:" + sid) is None
    profile = client.get("/center/profile")
    assert profile.status_code == 302
    assert location_path(profile) == "/login"


def test_a_stolen_cookie_is_dead_after_logout(app, client):
    make_account()
    login(app, client, "zhang_san")
    sid = client.get_cookie("idp_session").value
    client.post("/logout", data={"csrf_token": csrf_token(client, "/logout"), "logout": "yes"})
    thief = app.test_client()
    thief.set_cookie("idp_session", sid)
    response = thief.get("/center/profile")
    assert response.status_code == 302
    assert location_path(response) == "/login"


def test_logout_no_keeps_the_session(app, client):
    make_account()
    login(app, client, "zhang_san")
    token = csrf_token(client, "/logout")
    client.post("/logout", data={"csrf_token": token, "logout": "no"})
    assert signed_in(app, client)
    assert client.get("/center/profile").status_code == 200
    assert events("logged_out") == []


def test_logout_needs_the_csrf_token(app, client):
    make_account()
    login(app, client, "zhang_san")
    response = client.post("/logout", data={"logout": "yes"})
    assert response.status_code == 400
    assert reason_of(response) == "csrf_failed"
    assert signed_in(app, client)


# --- audit -------------------------------------------------------------------------------


def test_a_successful_login_is_audited(app, client):
    make_account()
    login(app, client, "zhang_san")
    [event] = events("login_succeeded")
    assert event.subject == "zhang_san"
    assert event.outcome == "success"
    assert event.client_address == "127.0.0.1"


def test_a_failed_login_is_audited_without_the_password(app, client):
    make_account()
    login(app, client, "zhang_san", "S3cret!Audit")
    [event] = events("login_failed")
    assert event.outcome == "failure"
    assert event.subject == "zhang_san"
    assert (event.details or {}).get("reason") == "invalid_credentials"
    assert "S3cret!Audit" not in repr(event.details)


def test_a_lock_is_audited(app, client):
    make_account()
    _fail(app, client, 5)
    [event] = events("account_locked")
    assert event.subject == "zhang_san"
    assert len(events("login_failed")) == 5


def test_a_logout_is_audited(app, client):
    make_account()
    login(app, client, "zhang_san")
    client.post("/logout", data={"csrf_token": csrf_token(client, "/logout"), "logout": "yes"})
    [event] = events("logged_out")
    assert event.subject == "zhang_san"


def test_the_whole_story_is_in_the_audit_log_in_order(app, client, clock):
    make_account()
    _fail(app, client, 5)
    clock.advance(app.config["LOGIN_LOCK_SECONDS"] + 1)
    login(app, client, "zhang_san")
    client.post("/logout", data={"csrf_token": csrf_token(client, "/logout"), "logout": "yes"})
    names = [e.event for e in events() if e.event != "account_registered"]
    assert names == ["login_failed"] * 4 + ["account_locked", "login_failed",
                                            "login_succeeded", "logged_out", "session_ended"]


# --- ?next= ------------------------------------------------------------------------------


def test_next_with_a_local_path_is_followed(app, client):
    make_account()
    response = post_login(app, client, "zhang_san", page="/login?next=/center/profile/edit")
    assert response.status_code == 302
    assert response.headers["Location"] in ("/center/profile/edit", "http://localhost/center/profile/edit")


def test_a_protected_page_sends_the_user_back_after_login(app, client):
    make_account()
    bounce = client.get("/center/profile")
    assert bounce.status_code == 302
    target = bounce.headers["Location"]
    assert urlsplit(target).path == "/login"
    response = post_login(app, client, "zhang_san", page=target)
    assert location_path(response) == "/center/profile"


@pytest.mark.parametrize("target", [
    "https://evil.example/steal",
    "http://localhost.evil.example/",
    "//evil.example/steal",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "javascript:alert(1)",
    "center/profile",
    "https:evil.example",
])
def test_next_ignores_anything_but_a_local_path(app, client, target):
    from urllib.parse import quote

    make_account()
    response = post_login(app, client, "zhang_san", page=f"/login?next={quote(target, safe='')}")
    assert response.status_code == 302
    location = response.headers["Location"]
    parts = urlsplit(location)
    assert parts.netloc in ("", "localhost")
    assert parts.path == "/center/profile"


def test_the_tab_links_keep_the_page_to_return_to(client):
    page = client.get("/login?next=/center/profile").get_data(as_text=True)
    assert 'href="/login?type=legal&amp;next=/center/profile"' in page
    assert 'href="/login?type=natural&amp;next=/center/profile"' in page


def test_the_current_account_follows_the_session_within_one_request(app):
    from flask import session

    from idp.accounts.views import current_account

    first = make_account(login_name="first_user")
    second = make_account(login_name="second_user", phone="13900139001",
                          document_number="11010519491231002X")
    with app.test_request_context("/"):
        session["account_id"] = first.id
        assert current_account().id == first.id
        session["account_id"] = second.id  # a sign-in within the request (idp.login.flow.finish)
        assert current_account().id == second.id
        session.clear()  # a logout
        assert current_account() is None
