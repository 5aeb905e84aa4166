"""What a user and an operator see when Redis or the database does not answer, in process and
fast (the real server under real outages: tests/integration/test_faults.py): a 503 page in the
user's language with the reason, JSON ``temporarily_unavailable`` for the APIs, one log line
without a traceback, and nothing written."""

from __future__ import annotations

import logging

import pytest

from idp import create_app
from tests.conftest import CHEAP_ARGON2
from tests.throwaway import free_port

UNAVAILABLE_ZH = "服务暂时不可用，请几分钟后再试；您的信息未作任何更改。"


@pytest.fixture
def no_redis(instance_dir, database_url):
    """The provider with a Redis URL where nothing listens."""
    app = create_app({"INSTANCE_DIR": str(instance_dir), "DATABASE_URL": database_url, "ISSUER": "http://localhost",
                      "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", **CHEAP_ARGON2})
    return app


@pytest.fixture
def no_database(instance_dir):
    app = create_app({"INSTANCE_DIR": str(instance_dir), "ISSUER": "http://localhost", "CAPTCHA": "off",
                      "DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none",
                      **CHEAP_ARGON2})
    return app


def _no_traceback(caplog) -> None:
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


def test_without_redis_a_page_is_a_503_in_the_users_language_with_one_log_line(no_redis, caplog):
    client = no_redis.test_client()
    with caplog.at_level(logging.INFO):
        page = client.get("/login")
        english = client.get("/login?lang=en")
    assert page.status_code == 503 and page.headers["Retry-After"] == "30"
    html = page.get_data(as_text=True)
    assert UNAVAILABLE_ZH in html and 'data-reason="store_unavailable"' in html
    assert "temporarily unavailable" in english.get_data(as_text=True)
    assert "idp_session" not in page.headers.get("Set-Cookie", "")
    lines = [r for r in caplog.records if getattr(r, "event", None) == "dependency_unavailable"]
    assert len(lines) == 2 and lines[0].dependency == "store" and lines[0].path == "/login"
    _no_traceback(caplog)


def test_without_redis_a_returning_visitors_session_cannot_be_read_and_is_not_overwritten(no_redis, caplog):
    client = no_redis.test_client()
    client.set_cookie("idp_session", "a" * 43)
    with caplog.at_level(logging.INFO):
        answer = client.post("/login", data={"login_name": "zhang_san", "password": "x"})
    # 503 before the CSRF check (which would need the session) and before any form is read.
    assert answer.status_code == 503 and 'data-reason="store_unavailable"' in answer.get_data(as_text=True)
    _no_traceback(caplog)


def test_without_redis_the_apis_fail_closed_with_temporarily_unavailable(no_redis, caplog):
    client = no_redis.test_client()
    with caplog.at_level(logging.INFO):
        # Both need the store before they can decide anything: without it, nothing is decided.
        answers = [client.post("/token", data={"grant_type": "authorization_code", "code": "c"},
                               headers={"Authorization": "Basic YTpi"}),
                   client.post("/introspect", data={"token": "t"}, headers={"Authorization": "Basic YTpi"})]
    for answer in answers:
        assert answer.status_code == 503
        assert answer.get_json()["error"] == "temporarily_unavailable"
        assert answer.headers["Retry-After"] == "30" and answer.headers["Cache-Control"] == "no-store"
    _no_traceback(caplog)


def test_without_the_database_a_sign_in_is_a_503_page_and_a_token_request_json(no_database, caplog):
    client = no_database.test_client()
    with caplog.at_level(logging.INFO):
        page = client.get("/login")
        from tests.throwaway import csrf_of

        answer = client.post("/login", data={"csrf_token": csrf_of(page.get_data(as_text=True)),
                                             "account_type": "natural", "login_name": "zhang_san",
                                             "password": "Passw0rd!x", "captcha": ""})
        token = client.post("/token", data={"grant_type": "authorization_code", "code": "c"},
                            headers={"Authorization": "Basic YTpi"})
    assert answer.status_code == 503
    html = answer.get_data(as_text=True)
    assert UNAVAILABLE_ZH in html and 'data-reason="database_unavailable"' in html
    assert token.status_code == 503 and token.get_json()["error"] == "temporarily_unavailable"
    assert any(getattr(r, "dependency", None) == "database" for r in caplog.records)
    _no_traceback(caplog)
