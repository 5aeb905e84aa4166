"""Shared fixtures: a provider on the configured database and store, with an injectable clock.

By default the embedded stack (SQLite file, in-process store). ``IDP_TEST_DATABASE_URL`` (a
PostgreSQL URL) and ``IDP_TEST_REDIS_URL`` switch the whole suite to the real services; the
schema is created by the Alembic migrations, as in production.
"""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import g, has_app_context, request_started
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from idp import create_app
from idp.clock import FrozenClock
from idp.extensions import db, services

TEST_DATABASE_URL = os.environ.get("IDP_TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("IDP_TEST_REDIS_URL")
PASSWORD = "Passw0rd!x"

# Cheap argon2id: the parameters are configuration; tests need speed, not strength.
# PASSWORD_FLOOR_REFRESH 0: a test that stores a dear legacy hash leaves no floor to the next one.
CHEAP_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024, "ARGON2_PARALLELISM": 1,
                "PASSWORD_FLOOR_REFRESH": 0}


def _fresh_postgres(url: str) -> str:
    """A new database per test run (named after the process, so parallel runs don't collide),
    created by the migrations as in production."""
    base, name = url.rsplit("/", 1)
    name = f"{name}_{os.getpid()}"
    url = f"{base}/{name}"
    engine = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("instance")


def _drop_postgres(url: str) -> None:
    base, name = url.rsplit("/", 1)
    engine = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def database_url(instance_dir):
    url = _fresh_postgres(TEST_DATABASE_URL) if TEST_DATABASE_URL else f"sqlite:///{instance_dir / 'test.db'}"
    app = create_app({"INSTANCE_DIR": str(instance_dir), "DATABASE_URL": url, **CHEAP_ARGON2})
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        db.engine.dispose()
    yield url
    if TEST_DATABASE_URL:
        _drop_postgres(url)


@pytest.fixture
def settings(instance_dir, database_url) -> dict:
    """Override per test with ``@pytest.mark.parametrize`` or by updating this dict."""
    return {
        "INSTANCE_DIR": str(instance_dir),
        "DATABASE_URL": database_url,
        "REDIS_URL": TEST_REDIS_URL or "memory://",
        "REDIS_PREFIX": f"idp-test-{os.getpid()}:",
        "ISSUER": "http://localhost",
        **CHEAP_ARGON2,
    }


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def app(settings, clock):
    app = create_app(settings, clock=clock)
    app.config["TESTING"] = True

    # The fixture holds one application context for the whole test so that tests can use
    # the database directly; Flask then reuses it for test-client requests. A served request
    # always starts with an empty ``g`` (CSRF token cache, current account, locale): so here.
    def fresh_g(sender, **extra):
        g._get_current_object().__dict__.clear()

    request_started.connect(fresh_g, app)

    app.test_client_class = CommittingClient
    with app.app_context():
        _empty_tables()
        store = services().store
        if hasattr(store, "clear"):
            store.clear()
        outbox = Path(settings["INSTANCE_DIR"]) / "sms-outbox.jsonl"
        outbox.unlink(missing_ok=True)
        yield app
        db.session.remove()
        db.engine.dispose()


class CommittingClient(FlaskClient):
    """What the test wrote itself before a request (accounts, clients made through the services,
    which only flush: idp.unit_of_work) is a unit of work of its own, committed as a command's
    would be, before any request is served (through Flask or in front of it, idp.oauth.bare)."""

    def open(self, *args, **kwargs):
        if has_app_context() and db.session().in_transaction():
            db.session.commit()
        return super().open(*args, **kwargs)


def _empty_tables() -> None:
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture
def client(app):
    return app.test_client()


# --- helpers shared by the tests -----------------------------------------------------------


def session_data(app, client) -> dict:
    cookie = client.get_cookie("idp_session")
    if cookie is None:
        return {}
    raw = app.extensions["idp.services"].store.get("session:" + cookie.value)
    return json.loads(raw) if raw else {}


def solve_captcha(app, client, purpose: str = "login") -> str:
    """Fetch a captcha image as a browser would and read its answer from the store."""
    assert client.get(f"/captcha/{purpose}.png").status_code == 200
    challenge = session_data(app, client)[f"captcha_{purpose}"]
    return app.extensions["idp.services"].captcha.peek(challenge)


def csrf_token(client, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def outbox_codes(app) -> list[str]:
    path = Path(app.config["INSTANCE_DIR"]) / "sms-outbox.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["params"]["code"] for line in path.read_text().splitlines()]


def login(app, client, login_name: str, password: str = PASSWORD, account_type: str = "natural",
          captcha: str | None = None):
    token = csrf_token(client, "/login")
    answer = solve_captcha(app, client) if captcha is None else captcha
    return client.post("/login", data={
        "csrf_token": token, "account_type": account_type, "login_name": login_name,
        "password": password, "captcha": answer,
    })


def make_account(account_type: str = "natural", login_name: str = "zhang_san", password: str = PASSWORD,
                 **profile):
    from idp.accounts.service import create_account

    if account_type == "legal":
        profile.setdefault("uscc", "91350100M000100Y43")
        profile.setdefault("org_name", "福州示例有限公司")
        profile.setdefault("org_region", "domestic")
    profile.setdefault("name", "张三")
    profile.setdefault("phone", "13800138000")
    account = create_account(account_type, login_name, password, **profile)
    db.session.commit()  # the service only flushes; the test's setup is a unit of its own
    return account


def reason_of(response) -> str | None:
    """The stable reason code a page carries in its data-reason attribute."""
    match = re.search(r'data-reason="([^"]*)"', response.get_data(as_text=True))
    return match.group(1) if match else None


def audit_events(name: str | None = None):
    from idp.models.audit import AuditEvent

    db.session.expire_all()
    query = db.select(AuditEvent).order_by(AuditEvent.id)
    if name:
        query = query.filter_by(event=name)
    return list(db.session.execute(query).scalars())


class FormState(HTMLParser):
    """What a browser would submit again: input values and selected options, and which fields
    show an error."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.error_ids: set[str] = set()
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name") and a.get("type") not in {"password", "submit", "button"}:
            self.values[a["name"]] = a.get("value") or ""
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select] = a.get("value") or ""
        elif tag == "p" and "error" in (a.get("class") or "").split() and a.get("id"):
            self.error_ids.add(a["id"])

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def form_state(page: str) -> FormState:
    parser = FormState()
    parser.feed(page)
    return parser
