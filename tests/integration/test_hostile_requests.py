"""Hostile and malformed requests: forged forms, huge bodies, broken encodings, injection
attempts, error pages, security headers, and the production safety checks."""

from __future__ import annotations

import html
import re
from urllib.parse import quote

import pytest

from idp import create_app
from idp.extensions import db
from idp.models.accounts import Account
from idp.models.audit import AuditEvent
from idp.security.pii import Keyring, KeyringError
from idp.settings import ConfigurationError, load_settings
from tests.conftest import CHEAP_ARGON2, PASSWORD, csrf_token, login, make_account, session_data, solve_captcha, reason_of
from tests.conftest import audit_events as events


def login_events() -> list[str]:
    return [e.event for e in events() if e.event in {"login_succeeded", "login_failed", "account_locked"}]


def counters(app, account) -> tuple[int, int]:
    store = app.extensions["idp.services"].store
    return store.count(f"rl:login_account:{account.id}"), store.count("rl:login_address:127.0.0.1")


def assert_clear_error_page(response, status: int, reason: str) -> None:
    page = response.get_data(as_text=True)
    assert response.status_code == status
    assert response.mimetype == "text/html"
    assert reason_of(response) == reason
    assert "Traceback" not in page
    assert 'File "' not in page
    assert "werkzeug" not in page.lower()
    assert "<!doctype html>" in page.lower()


# --- CSRF --------------------------------------------------------------------------------


def _login_form(token=None, **overrides):
    data = {"account_type": "natural", "login_name": "zhang_san", "password": PASSWORD,
            "captcha": "ABCD"}
    if token is not None:
        data["csrf_token"] = token
    data.update(overrides)
    return data


def _assert_nothing_happened(app, client, account):
    assert not session_data(app, client).get("account_id")
    assert login_events() == []
    assert counters(app, account) == (0, 0)
    assert [e.event for e in events("request_refused")] == ["request_refused"]
    assert events("request_refused")[0].details == {"reason": "csrf_failed"}


def test_a_login_post_without_csrf_token_is_refused_and_changes_nothing(app, client):
    account = make_account()
    client.get("/login")
    answer = solve_captcha(app, client)
    response = client.post("/login", data=_login_form(captcha=answer))
    assert_clear_error_page(response, 400, "csrf_failed")
    _assert_nothing_happened(app, client, account)


def test_a_login_post_without_any_session_is_refused(app, client):
    account = make_account()
    response = client.post("/login", data=_login_form())
    assert_clear_error_page(response, 400, "csrf_failed")
    _assert_nothing_happened(app, client, account)


@pytest.mark.parametrize("forged", [
    "forged",
    "",
    "IjAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAi.aaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbb",
    "' OR 1=1 --",
])
def test_a_login_post_with_a_forged_csrf_token_is_refused_and_changes_nothing(app, client, forged):
    account = make_account()
    client.get("/login")
    answer = solve_captcha(app, client)
    response = client.post("/login", data=_login_form(forged, captcha=answer))
    assert_clear_error_page(response, 400, "csrf_failed")
    _assert_nothing_happened(app, client, account)


def test_a_csrf_token_from_another_session_is_refused(app, client):
    account = make_account()
    attacker = app.test_client()
    stolen = csrf_token(attacker, "/login")
    client.get("/login")
    answer = solve_captcha(app, client)
    response = client.post("/login", data=_login_form(stolen, captcha=answer))
    assert_clear_error_page(response, 400, "csrf_failed")
    _assert_nothing_happened(app, client, account)


def test_a_wrong_password_with_a_forged_token_does_not_count_as_a_failure(app, client):
    account = make_account()
    client.get("/login")
    for _ in range(6):
        client.post("/login", data=_login_form("forged", password="Wr0ng!pass"))
    assert counters(app, account) == (0, 0)
    assert login(app, client, "zhang_san").status_code == 302


# --- oversized bodies --------------------------------------------------------------------

TEN_MB = 10 * 1024 * 1024


def test_a_10_mb_form_body_gets_a_clear_413_page(app, client):
    make_account()
    token = csrf_token(client, "/login")
    response = client.post("/login", data=_login_form(token, login_name="a" * TEN_MB))
    assert_clear_error_page(response, 413, "http_413")
    assert not session_data(app, client).get("account_id")
    refused = events("request_refused")
    assert refused and refused[-1].details == {"reason": "too_large"}
    assert login_events() == []


def test_a_10_mb_raw_body_gets_a_clear_413_page(client):
    response = client.post("/login", data=b"x=" + b"y" * TEN_MB,
                           content_type="application/x-www-form-urlencoded")
    assert_clear_error_page(response, 413, "http_413")


def test_a_10_mb_multipart_upload_gets_a_clear_413_page(client):
    import io

    token = csrf_token(client, "/login")
    response = client.post("/login", data={"csrf_token": token,
                                           "file": (io.BytesIO(b"\0" * TEN_MB), "big.bin")},
                           content_type="multipart/form-data")
    assert_clear_error_page(response, 413, "http_413")


def test_the_site_still_works_after_an_oversized_request(app, client):
    make_account()
    client.post("/login", data={"login_name": "a" * TEN_MB})
    assert login(app, client, "zhang_san").status_code == 302


# --- broken encodings and control characters ---------------------------------------------


def _raw_login(app, client, login_name_encoded: str, password_encoded: str | None = None):
    token = csrf_token(client, "/login")
    answer = solve_captcha(app, client)
    body = (f"csrf_token={quote(token)}&account_type=natural&login_name={login_name_encoded}"
            f"&password={password_encoded or quote(PASSWORD)}&captcha={answer}")
    return client.post("/login", data=body.encode("ascii"),
                       content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("encoded", ["%FF%FE%FD", "zhang%FF_san", "%C0%AF%C0%AF", "%ED%A0%80abcd"])
def test_invalid_utf8_in_the_login_name_is_a_field_error(app, client, encoded):
    account = make_account()
    response = _raw_login(app, client, encoded)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'id="login_name-error"' in page
    assert "Traceback" not in page
    assert not session_data(app, client).get("account_id")
    assert counters(app, account) == (0, 0)


def test_invalid_utf8_in_the_password_is_a_field_error(app, client):
    make_account()
    response = _raw_login(app, client, "zhang_san", "Passw0rd%FF%FE")
    assert response.status_code == 400
    assert 'id="password-error"' in response.get_data(as_text=True)


def test_invalid_utf8_in_a_multipart_login_name_is_a_field_error(app, client):
    make_account()
    token = csrf_token(client, "/login")
    answer = solve_captcha(app, client)
    parts = {"csrf_token": token.encode(), "account_type": b"natural",
             "login_name": b"\xff\xfezhang", "password": PASSWORD.encode(), "captcha": answer.encode()}
    body = b"".join(
        b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"" + name.encode() + b"\"\r\n\r\n"
        + value + b"\r\n" for name, value in parts.items()
    ) + b"--BOUNDARY--\r\n"
    response = client.post("/login", data=body, content_type="multipart/form-data; boundary=BOUNDARY")
    assert response.status_code == 400
    assert 'id="login_name-error"' in response.get_data(as_text=True)
    assert not session_data(app, client).get("account_id")


def test_raw_invalid_utf8_bytes_in_a_form_body_do_not_crash(app, client):
    make_account()
    token = csrf_token(client, "/login")
    body = b"csrf_token=" + token.encode() + b"&account_type=natural&login_name=\xff\xfe\xfd&password=x"
    response = client.post("/login", data=body, content_type="application/x-www-form-urlencoded")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Traceback" not in page
    assert not session_data(app, client).get("account_id")


@pytest.mark.parametrize("encoded", ["zhang%00san", "zhang%1B%5B31msan", "zhang%7Fsan", "%EE%80%80zhang"])
def test_control_and_private_use_characters_in_the_login_name_are_a_field_error(app, client, encoded):
    make_account()
    response = _raw_login(app, client, encoded)
    assert response.status_code == 400
    assert 'id="login_name-error"' in response.get_data(as_text=True)


def test_an_overlong_login_name_is_a_field_error_not_a_crash(app, client):
    make_account()
    response = _raw_login(app, client, "a" * 5000)
    assert response.status_code == 400
    assert 'id="login_name-error"' in response.get_data(as_text=True)


# --- injection ---------------------------------------------------------------------------

PAYLOADS = [
    "' OR 1=1 --",
    "zhang_san' --",
    "admin'/*",
    "\"; DROP TABLE accounts; --",
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "{{7*7}}",
]


def _echoed_login_name(page: str) -> str:
    tag = re.search(r'<input[^>]*name="login_name"[^>]*>', page).group(0)
    match = re.search(r'value="([^"]*)"', tag)
    return html.unescape(match.group(1)) if match else ""


@pytest.mark.parametrize("payload", PAYLOADS)
def test_metacharacters_in_the_login_name_fail_normally_and_are_escaped(app, client, payload):
    make_account()
    response = login(app, client, payload)
    page = response.get_data(as_text=True)
    assert response.status_code == 401
    assert reason_of(response) == "invalid_credentials"
    assert not session_data(app, client).get("account_id")
    assert _echoed_login_name(page) == payload.strip()
    if any(c in payload for c in "<>\""):
        assert payload not in page
    assert "<script>alert(1)" not in page
    assert "<img src=x" not in page
    assert "49" not in _echoed_login_name(page)
    db.session.expire_all()
    assert db.session.execute(db.select(db.func.count()).select_from(Account)).scalar() == 1


@pytest.mark.parametrize("payload", PAYLOADS)
def test_metacharacters_in_the_password_do_not_sign_in(app, client, payload):
    make_account()
    response = login(app, client, "zhang_san", payload)
    assert response.status_code == 401
    assert reason_of(response) == "invalid_credentials"
    assert payload not in response.get_data(as_text=True)


def test_the_accounts_survive_every_injection_attempt(app, client):
    make_account()
    for payload in PAYLOADS:
        login(app, client, payload, payload)
    assert login(app, app.test_client(), "zhang_san").status_code == 302


def test_metacharacters_in_next_are_not_reflected_raw(client):
    response = client.get("/login?next=" + quote('"><script>alert(1)</script>'))
    assert response.status_code == 200
    assert "<script>alert(1)" not in response.get_data(as_text=True)


# --- security headers and error pages ----------------------------------------------------


def _html_responses(app, client):
    make_account()
    yield "login", client.get("/login")
    yield "legal tab", client.get("/login?type=legal")
    yield "register", client.get("/register")
    yield "logout", client.get("/logout")
    yield "wrong password", login(app, client, "zhang_san", "Wr0ng!pass")
    yield "csrf", client.post("/login", data={"login_name": "x"})
    yield "404", client.get("/no/such/page")
    yield "405", client.delete("/login")
    login(app, client, "zhang_san")
    yield "profile", client.get("/center/profile")


def test_every_html_response_carries_csp_and_nosniff(app, client):
    seen = 0
    for name, response in _html_responses(app, client):
        assert response.mimetype == "text/html", name
        csp = response.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp, name
        assert response.headers.get("X-Content-Type-Options") == "nosniff", name
        assert "no-store" in response.headers.get("Cache-Control", ""), name
        seen += 1
    assert seen == 9


def test_the_oversized_body_page_carries_the_headers_too(client):
    response = client.post("/login", data={"login_name": "a" * TEN_MB})
    assert response.status_code == 413
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_csp_allows_no_inline_script(client):
    csp = client.get("/login").headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp


def test_the_captcha_image_is_nosniff_too(client):
    response = client.get("/captcha/login.png")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_404_gives_the_clear_error_page(client):
    assert_clear_error_page(client.get("/no/such/page"), 404, "http_404")


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_a_405_gives_the_clear_error_page(client, method):
    response = getattr(client, method)("/login")
    assert_clear_error_page(response, 405, "http_405")


def test_an_unhandled_exception_gives_the_500_page_without_a_traceback(app, client):
    def explode():
        db.session.add(AuditEvent(event="half_done", outcome="success"))
        raise RuntimeError("kaboom: internal detail sk_live_1234")

    app.add_url_rule("/_test/explode", "test_explode", explode)
    response = client.get("/_test/explode")
    page = response.get_data(as_text=True)
    assert_clear_error_page(response, 500, "server_error")
    assert "kaboom" not in page
    assert "sk_live_1234" not in page
    assert "RuntimeError" not in page
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert events("half_done") == []  # the half-finished transaction was rolled back


def test_the_site_still_works_after_an_unhandled_exception(app, client):
    app.add_url_rule("/_test/explode", "test_explode", lambda: 1 / 0)
    make_account()
    assert client.get("/_test/explode").status_code == 500
    assert login(app, client, "zhang_san").status_code == 302


def test_no_hsts_outside_production(client):
    assert "Strict-Transport-Security" not in client.get("/login").headers


# --- production ---------------------------------------------------------------------------


@pytest.fixture
def production_settings(tmp_path) -> dict:
    keyring = tmp_path / "pii-keyring.json"
    Keyring.load(keyring, create=True)
    return {
        "ENV": "production",
        "INSTANCE_DIR": str(tmp_path),
        "ISSUER": "https://idp.example.gov.cn",
        "DATABASE_URL": "postgresql+psycopg://idp:secret@127.0.0.1:1/idp_never_connected",
        "REDIS_URL": "memory://",
        "SMS_GATEWAY": "http",
        "SMS_HTTP_URL": "https://sms.example.gov.cn/send",
        "SMS_HTTP_SECRET": "shared-secret",
        "VERIFIER": "http",
        "VERIFIER_URL": "https://verify.example.gov.cn/check",
        "VERIFIER_SECRET": "shared-secret",
        "SECRET_KEY": "a-production-secret-key-of-reasonable-length-0123456789",
        "PII_KEYRING": str(keyring),
        **CHEAP_ARGON2,
    }


def test_hsts_is_sent_in_production(production_settings):
    prod = create_app(production_settings)
    client = prod.test_client()
    for response in (client.get("/login", base_url="https://idp.example.gov.cn"),
                     client.get("/no/such/page", base_url="https://idp.example.gov.cn")):
        hsts = response.headers.get("Strict-Transport-Security", "")
        assert "max-age=" in hsts
        assert int(re.search(r"max-age=(\d+)", hsts).group(1)) >= 15552000  # at least 180 days
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_production_cookies_are_secure(production_settings):
    prod = create_app(production_settings)
    response = prod.test_client().get("/login", base_url="https://idp.example.gov.cn")
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("idp_session="))
    assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header


def test_production_has_no_development_pages(production_settings):
    prod = create_app(production_settings)
    response = prod.test_client().get("/dev/sms-outbox", base_url="https://idp.example.gov.cn")
    assert response.status_code == 404


@pytest.mark.parametrize("off", ["off", False, "OFF"])
def test_production_refuses_captcha_off(production_settings, off):
    production_settings["CAPTCHA"] = off
    with pytest.raises(ConfigurationError):
        load_settings(production_settings)
    with pytest.raises(ConfigurationError):
        create_app(production_settings)


def test_production_refuses_captcha_off_from_the_environment(production_settings, monkeypatch):
    monkeypatch.setenv("IDP_CAPTCHA", "off")
    monkeypatch.setenv("IDP_ENV", "production")
    del production_settings["ENV"]
    with pytest.raises(ConfigurationError):
        load_settings(production_settings)


@pytest.mark.parametrize("key, value", [
    ("ISSUER", "http://idp.example.gov.cn"),
    ("DATABASE_URL", "sqlite:///idp.db"),
    ("SMS_GATEWAY", "outbox"),
    ("VERIFIER", "local"),
])
def test_production_refuses_unsafe_defaults(production_settings, key, value):
    production_settings[key] = value
    with pytest.raises(ConfigurationError):
        create_app(production_settings)


def test_production_refuses_to_invent_a_personal_data_keyring(production_settings, tmp_path):
    production_settings["PII_KEYRING"] = str(tmp_path / "missing.json")
    with pytest.raises(KeyringError):
        create_app(production_settings)
    assert not (tmp_path / "missing.json").exists()


def test_production_refuses_to_invent_a_secret_key(production_settings):
    del production_settings["SECRET_KEY"]
    with pytest.raises(ConfigurationError):
        create_app(production_settings)
