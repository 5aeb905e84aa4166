"""A real upstream: a second instance of this provider, served on its own loopback port with
its own database, store, keys and clock, configured as the national platform, with a client
registered for the provider under test (which is served too, so that the upstream's
back-channel logout can reach it).

The person at the browser is two test clients: ``client`` for the provider under test and
``upstream.browser`` for the national platform; ``national_sign_in`` walks the whole flow
(/login/national → the upstream's /authorize → its login page → back to our callback).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

from idp import create_app
from idp.clock import FrozenClock
from idp.extensions import db
from tests.conftest import CHEAP_ARGON2, PASSWORD, make_account
from tests.live_server import _listening, _QuietHandler, live_server  # noqa: F401

UPSTREAM_SCOPES = ["openid", "profile", "email", "phone", "verification"]


@pytest.fixture(scope="session")
def upstream_database(tmp_path_factory) -> tuple[Path, str]:
    """The national platform's own SQLite database, made by the migrations once per run."""
    instance = tmp_path_factory.mktemp("upstream")
    url = f"sqlite:///{instance / 'upstream.db'}"
    app = create_app({"INSTANCE_DIR": str(instance), "DATABASE_URL": url, **CHEAP_ARGON2})
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        db.engine.dispose()
    return instance, url


@pytest.fixture
def _upstream_listening():
    target = _Late()
    server = make_server("127.0.0.1", 0, target, threaded=True, request_handler=_QuietHandler)
    yield server, target
    server.server_close()


class _Late:
    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


@pytest.fixture
def upstream_clock(clock) -> FrozenClock:
    """The national platform's clock: the same time as ours unless a test moves it."""
    return FrozenClock(clock.time())


@pytest.fixture
def settings(settings, _listening, _upstream_listening):
    """Ours at the live server's real address, the national platform configured."""
    server, _ = _upstream_listening
    settings.update(
        ISSUER=f"http://127.0.0.1:{_listening[0].server_port}",
        CAPTCHA="off",
        NATIONAL_ISSUER=f"http://127.0.0.1:{server.server_port}",
        NATIONAL_CLIENT_ID="idp-under-test",
        NATIONAL_CLIENT_SECRET="s3cret-of-the-provider-under-test-at-the-platform",
        NATIONAL_TIMEOUT=10.0,  # a loaded machine; the slow-upstream test sets its own
    )
    return settings


@dataclass
class Upstream:
    app: object
    issuer: str
    browser: object
    client_id: str

    def context(self):
        return self.app.app_context()

    def person(self, login_name: str = "li_si", **profile):
        """An account at the national platform; returns its sub there."""
        with self.context():
            profile.setdefault("name", "李四")
            profile.setdefault("phone", "13900139000")
            profile.setdefault("email", "lisi@example.cn")
            account = make_account("natural", login_name, **profile)
            return account.sub

    def verify(self, login_name: str = "li_si") -> None:
        """The national platform has verified the person (its own real-name check)."""
        import json

        from idp.models.accounts import Account

        with self.context():
            account = db.session.execute(db.select(Account).filter_by(login_name=login_name)).scalar_one()
            account.verification_status = "verified_auto"
            account.verification_method = "national_platform"
            account.verified_at = self.app.extensions["idp.services"].clock.now()
            account.verified_data = json.dumps({"name": account.name, "birthdate": account.birth_date},
                                               ensure_ascii=False)
            db.session.commit()

    def set_client(self, **columns) -> None:
        from idp.models.clients import Client

        with self.context():
            row = db.session.execute(db.select(Client).filter_by(client_id=self.client_id)).scalar_one()
            for name, value in columns.items():
                setattr(row, name, value)
            db.session.commit()


@pytest.fixture
def upstream(settings, upstream_database, _upstream_listening, upstream_clock, live_server):
    """The national platform, served; its client for us registered (trusted: no consent page)."""
    from idp.clients import ClientSpec, create

    server, target = _upstream_listening
    instance, url = upstream_database
    issuer = settings["NATIONAL_ISSUER"]
    app = create_app({"INSTANCE_DIR": str(instance), "DATABASE_URL": url, "ISSUER": issuer, "CAPTCHA": "off",
                      "REDIS_URL": "memory://", **CHEAP_ARGON2}, clock=upstream_clock)
    app.config["TESTING"] = True
    ours = settings["ISSUER"]
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        create(ClientSpec(
            name="统一身份认证（测试）", client_id=settings["NATIONAL_CLIENT_ID"],
            redirect_uris=[f"{ours}/login/national/callback"], post_logout_redirect_uris=[f"{ours}/login"],
            scopes=UPSTREAM_SCOPES, trusted=True,
            backchannel_logout_uri=f"{ours}/login/national/backchannel-logout"),
            secret=settings["NATIONAL_CLIENT_SECRET"])
        db.session.commit()  # the registry only flushes: the set-up is a unit of its own
        db.session.remove()
    target.app = app
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    browser = app.test_client()
    try:
        yield Upstream(app=app, issuer=issuer, browser=browser, client_id=settings["NATIONAL_CLIENT_ID"])
    finally:
        server.shutdown()
        thread.join(5)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


# --- the person at the browser ----------------------------------------------------------------


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def csrf_in(page: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page)
    assert match, "no CSRF token on the page"
    return unescape(match.group(1))


def to_upstream(client) -> str:
    """Our /login/national: the URL of the upstream's authorization endpoint."""
    response = client.get("/login/national")
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def sign_in_upstream(upstream: Upstream, authorize_url: str, login_name: str = "li_si",
                     password: str = PASSWORD) -> object:
    """At the national platform: /authorize, its login page, its answer (a redirect to us)."""
    browser = upstream.browser
    response = browser.get(authorize_url)
    if response.status_code == 302 and "/login" in urlsplit(response.headers["Location"]).path:
        login_page = path_of(response.headers["Location"])
        page = browser.get(login_page).get_data(as_text=True)
        response = browser.post(login_page, data={
            "csrf_token": csrf_in(page), "account_type": "natural", "login_name": login_name,
            "password": password, "captcha": ""})
    for _ in range(5):  # the upstream's own redirects (back to its /authorize), not the one to us
        location = response.headers.get("Location", "")
        if response.status_code not in (302, 303) or urlsplit(location).netloc not in ("", "localhost"):
            break
        response = browser.get(path_of(location))
    return response


def national_sign_in(client, upstream: Upstream, login_name: str = "li_si"):
    """The whole round trip; returns our answer to the upstream's redirect (the callback)."""
    answer = sign_in_upstream(upstream, to_upstream(client), login_name)
    assert answer.status_code in (302, 303), answer.get_data(as_text=True)[:500]
    callback = answer.headers["Location"]
    assert "/login/national/callback" in callback, callback
    return client.get(path_of(callback))
