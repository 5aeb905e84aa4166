"""Faults survived (issue 18, item 3): the real server (`idp serve`) on a PostgreSQL cluster and a
Redis server that the test starts for itself, then stops, restarts or kills under it. Every fault
ends in a clear answer for the user (a 503 page in their language, or JSON for an API), a log
line for the operator, no traceback, no half-written state, and recovery without a restart.

Marker ``faults``: several processes each, some tens of seconds in all; `.ci/run` runs them once.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid

import pytest
from sqlalchemy import create_engine, text

from tests.throwaway import (PostgresCluster, Provider, RedisServer, Visitor, exchange, provider_env, reason_of,
                             setup_provider, userinfo, wait_for)

pytestmark = pytest.mark.faults

UNAVAILABLE_ZH = "服务暂时不可用"


@pytest.fixture(scope="module")
def postgres():
    cluster = PostgresCluster()
    yield cluster
    cluster.close()


@pytest.fixture
def redis_server():
    server = RedisServer()
    yield server
    server.close()


@pytest.fixture
def stack(postgres, redis_server, tmp_path):
    """A database of its own on the throwaway cluster, the schema, a person, a client."""
    url = postgres.create_database(f"faults_{uuid.uuid4().hex[:8]}")
    env = provider_env(tmp_path / "instance", url, redis_server.url + "/0", IDP_LOG_FORMAT="json",
                       IDP_SMS_RESEND_SECONDS=1)
    client = setup_provider(env)
    return env, client, url


@pytest.fixture
def provider(stack):
    env, _, _ = stack
    server = Provider(env)
    yield server
    server.close()


def _log_lines(provider: Provider) -> list[dict]:
    lines = []
    for line in provider.output().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            lines.append({"message": line})
    return lines


def _no_traceback(provider: Provider) -> None:
    output = provider.output()
    assert "Traceback" not in output, output[-3000:]


def test_redis_stopped_sign_ins_answer_503_tokens_fail_closed_and_all_recovers_when_it_returns(
        stack, provider, redis_server):
    env, client, _ = stack
    base = provider.base
    browser = Visitor(base)
    tokens = exchange(base, client, browser.authorize(client)).json()
    assert userinfo(base, tokens["access_token"]).status_code == 200

    redis_server.stop()

    # A sign-in, by a returning visitor (the session cookie) and by a new one: a clear page, 503.
    for visitor in (browser, Visitor(base)):
        page = visitor.login_page()
        assert page.status_code == 503, page.text[:300]
        assert reason_of(page.text) == "store_unavailable"
        assert UNAVAILABLE_ZH in page.text
        assert page.headers["Retry-After"] == "30"
    english = Visitor(base).request("GET", "/login?lang=en")
    assert english.status_code == 503 and "temporarily unavailable" in english.text
    # The APIs fail closed: a revocation could be missed while the store does not answer.
    answer = userinfo(base, tokens["access_token"])
    assert answer.status_code == 503 and answer.json()["error"] == "temporarily_unavailable"
    # /healthz still says the process serves; /readyz names what failed.
    assert Visitor(base).request("GET", "/healthz").status_code == 200
    ready = Visitor(base).request("GET", "/readyz")
    assert ready.status_code == 503 and ready.json()["failed"] == ["store"]

    lines = _log_lines(provider)
    assert any(line.get("event") == "dependency_unavailable" and line.get("dependency") == "store"
               and line.get("path") == "/login" for line in lines)
    _no_traceback(provider)

    redis_server.start()  # an empty Redis, as after a crash: the sessions are gone, nothing else

    def signs_in() -> bool:
        return Visitor(base).login_page().status_code == 200

    wait_for(signs_in, 15, "sign-in page after Redis returned")
    fresh = Visitor(base)
    new_tokens = exchange(base, client, fresh.authorize(client)).json()
    assert userinfo(base, new_tokens["access_token"]).status_code == 200
    assert userinfo(base, tokens["access_token"]).status_code == 200  # the earlier token is valid again
    assert provider.process.poll() is None  # the same server, never restarted
    _no_traceback(provider)


def test_postgresql_restarted_the_provider_recovers_without_a_restart(stack, provider, postgres):
    env, client, _ = stack
    base = provider.base
    tokens = exchange(base, client, Visitor(base).authorize(client)).json()

    postgres.stop()
    try:
        visitor = Visitor(base)
        code_page = visitor.request("GET", "/login")  # the login page reads no account: may still answer
        assert code_page.status_code in (200, 503)
        login = visitor.post_login(code_page.text) if code_page.status_code == 200 else code_page
        assert login.status_code == 503 and reason_of(login.text) == "database_unavailable"
        assert UNAVAILABLE_ZH in login.text
        refresh = exchange(base, client, "no-such-code")
        assert refresh.status_code == 503 and refresh.json()["error"] == "temporarily_unavailable"
    finally:
        postgres.start()

    # Every pooled connection died with the server: the first use of each is answered 503 at
    # most once, then the pool has fresh ones.
    def signs_in() -> bool:
        try:
            return bool(Visitor(base).authorize(client))
        except AssertionError:
            return False

    wait_for(signs_in, 20, "a sign-in after PostgreSQL restarted")
    for _ in range(5):
        assert exchange(base, client, Visitor(base).authorize(client)).status_code == 200
    assert userinfo(base, tokens["access_token"]).status_code == 200
    assert any(line.get("event") == "dependency_unavailable" and line.get("dependency") == "database"
               for line in _log_lines(provider))
    assert provider.process.poll() is None
    _no_traceback(provider)


def _blocked_until_killed(provider: Provider, database_url: str, table: str, request) -> None:
    """Lock ``table`` from outside, send ``request`` (in a thread), wait until the worker waits
    for the lock inside its transaction, SIGKILL the worker, release the lock."""
    engine = create_engine(database_url)
    locker = engine.connect()
    locker.begin()
    locker.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("answer", _quietly(request)))
    thread.start()
    try:
        probe = create_engine(database_url)
        with probe.connect() as conn:
            wait_for(lambda: conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )).scalar(), 20, f"a worker waiting for {table}")
        probe.dispose()
        workers = provider.workers()
        assert workers, "no worker process"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
    finally:
        locker.rollback()
        locker.close()
        engine.dispose()
        thread.join(30)
    return outcome.get("answer")


def _quietly(request):
    try:
        return request()
    except Exception as error:  # the connection dies with the worker
        return error


def test_a_worker_killed_mid_registration_leaves_no_half_created_account(stack, provider):
    env, _, url = stack
    base = provider.base
    visitor = Visitor(base)
    page = visitor.request("GET", "/register/natural")
    assert page.status_code == 200
    sent = visitor.request("POST", "/register/send-code", data={
        "csrf_token": _csrf(page.text), "phone": "13900139000", "captcha": ""})
    assert sent.status_code == 200, sent.text
    outbox = os.path.join(env["IDP_INSTANCE_DIR"], "sms-outbox.jsonl")
    code = json.loads(open(outbox).read().splitlines()[-1])["params"]["code"]
    form = {"csrf_token": _csrf(page.text), "login_name": "li_si", "password": "Passw0rd!x",
            "password_confirm": "Passw0rd!x", "name": "李四", "identity_region": "mainland",
            "document_type": "resident_id", "document_number": "11010519491231002X", "phone": "13900139000",
            "email": "lisi@example.cn", "sms_code": code}

    answer = _blocked_until_killed(provider, url, "audit_events",
                                   lambda: visitor.request("POST", "/register/natural", data=form))
    assert not (getattr(answer, "status_code", 0) in (302, 303)), "the registration finished before the kill"
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM accounts WHERE login_name = 'li_si'")).scalar() == 0
    engine.dispose()

    # The master starts a new worker. The code the dead request spent stays spent (it is spent
    # just before the commit, so that two registrations can never share one): sent again, the
    # form is refused at the code field with a clear message, and with a new code it completes.
    wait_for(lambda: provider.workers() and Visitor(base).request("GET", "/healthz").status_code == 200,
             30, "a new worker")
    page = visitor.request("GET", "/register/natural")
    form["csrf_token"] = _csrf(page.text)
    again = visitor.request("POST", "/register/natural", data=form)
    assert again.status_code == 400 and 'id="sms_code-error"' in again.text
    time.sleep(1.1)  # IDP_SMS_RESEND_SECONDS=1 in this stack
    sent = visitor.request("POST", "/register/send-code", data={
        "csrf_token": _csrf(page.text), "phone": "13900139000", "captcha": ""})
    assert sent.status_code == 200, sent.text
    form["sms_code"] = json.loads(open(outbox).read().splitlines()[-1])["params"]["code"]
    done = visitor.request("POST", "/register/natural", data=form)
    assert done.status_code in (302, 303), reason_of(done.text)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM accounts WHERE login_name = 'li_si'")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM audit_events WHERE event = 'account_registered' "
                                 "AND subject = 'li_si'")).scalar() == 1
    engine.dispose()


def test_a_worker_killed_mid_token_exchange_spends_no_code_without_its_tokens(stack, provider):
    env, client, url = stack
    base = provider.base
    code = Visitor(base).authorize(client)

    answer = _blocked_until_killed(provider, url, "refresh_tokens", lambda: exchange(base, client, code))
    assert getattr(answer, "status_code", None) != 200, "the exchange finished before the kill"

    # The code is not spent: the exchange, sent again to the new worker, gets the tokens once.
    wait_for(lambda: provider.workers() and Visitor(base).request("GET", "/healthz").status_code == 200,
             30, "a new worker")
    again = exchange(base, client, code)
    assert again.status_code == 200, again.text
    assert "access_token" in again.json()
    assert exchange(base, client, code).status_code == 400  # and once only


def _csrf(html: str) -> str:
    from tests.throwaway import csrf_of

    return csrf_of(html)


def test_the_verifier_down_a_saved_profile_is_verified_later_by_the_worker(stack):
    """The national interface answers 503 while a person saves 修改个人信息 through the real
    server: the data is saved, the page says the check will be tried again, and `idp worker`
    (its own process, as in production) verifies the account once the interface answers."""
    from tests.throwaway import idp
    from tests.verification.test_verifier_retry import ID_1, SECRET, National

    env, _, url = stack
    national = National()
    server = Provider(dict(env, IDP_VERIFIER="http", IDP_VERIFIER_URL=national.url, IDP_VERIFIER_SECRET=SECRET,
                           IDP_VERIFIER_TIMEOUT="0.5", IDP_VERIFIER_RETRIES="0"))
    engine = create_engine(url)

    def status() -> str:
        with engine.connect() as conn:
            return conn.execute(text("SELECT verification_status FROM accounts WHERE login_name = 'zhang_san'")
                                ).scalar_one()

    try:
        visitor = Visitor(server.base)
        assert visitor.post_login(visitor.login_page().text).status_code in (302, 303)
        form = visitor.request("GET", "/center/profile/edit")
        saved = visitor.request("POST", "/center/profile/edit", data={
            "csrf_token": _csrf(form.text), "name": "张三", "identity_region": "mainland",
            "document_type": "resident_id", "document_number": ID_1, "birth_date": "", "email": "",
            "address": "", "landline": ""})
        assert saved.status_code in (302, 303), reason_of(saved.text)
        shown = visitor.request("GET", saved.headers["Location"])
        assert "系统将稍后自动重新进行实名认证" in shown.text
        assert status() == "unverified" and national.requests  # asked once in the request, saved anyway

        national.mode = "match"
        worker_env = dict(server.env, IDP_VERIFIER_URL=national.url)

        def verified() -> bool:
            idp(worker_env, "worker", "--once")  # a job becomes due after the queue's backoff
            return status() == "verified_auto"

        wait_for(verified, 60, "the worker's verification retry", interval=1)
        _no_traceback(server)
    finally:
        engine.dispose()
        server.close()
        national.stop()
