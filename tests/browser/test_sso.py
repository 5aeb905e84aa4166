"""Single sign-on and single logout across two business systems (the demo relying party as
高新技术企业认定 and 科技型中小企业评价), each a real HTTP server on its own loopback port, with
the provider on the live server and the captcha on."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from werkzeug.serving import make_server

from clients.demo_rp import create_app as create_demo_system
from idp.clients import import_declaration, load_declaration
from idp.extensions import db
from idp.models.oauth import Job
from tests.browser.conftest import login, screenshot
from tests.live_server import _LateApp, _QuietHandler
from tests.conftest import PASSWORD, make_account

pytestmark = pytest.mark.browser

CLIENTS = Path(__file__).resolve().parents[2] / "clients"
UNIT_LOGIN = "sso_unit"
UNIT_NAME = "福州示例有限公司"  # make_account's default unit
USCC = "91350100M000100Y43"



@pytest.fixture
def systems(app, live_server):
    """Both demo systems served on free loopback ports, registered as clients from their
    declarations; yields {"gaoqi": base URL, "kexiaoqi": base URL}."""
    servers = {name: make_server("127.0.0.1", 0, _LateApp(), threaded=True, request_handler=_QuietHandler)
               for name in ("gaoqi", "kexiaoqi")}
    bases = {name: f"http://127.0.0.1:{server.server_port}" for name, server in servers.items()}
    threads = []
    for name, server in servers.items():
        _, secret = import_declaration(load_declaration(CLIENTS / f"{name}.toml", bases))
        peer = next(other for other in bases if other != name)
        server.app.app = create_demo_system(name, server.server_port, live_server, secret,
                                            peer_url=bases[peer])
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield bases
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(5)


@pytest.fixture
def unit(app):
    return make_account("legal", UNIT_LOGIN, PASSWORD, name="李四")


def provider_login_page(live_server: str):
    return re.compile(re.escape(live_server) + r"/login(\?|$)")


def expect_signed_in(page: Page, base: str) -> None:
    expect(page).to_have_url(base + "/")
    signed_in = page.locator("#signed-in")
    expect(signed_in).to_contain_text(UNIT_NAME)
    expect(signed_in.locator("tr[data-field='uscc'] td")).to_have_text(USCC)
    expect(signed_in.locator("tr[data-field='account_type'] td")).to_contain_text("法人")


def expect_signed_out(page: Page, base: str) -> None:
    page.goto(base + "/")
    expect(page.locator("#signed-out")).to_be_visible()
    expect(page.locator("#signed-in")).to_have_count(0)


def sign_in_with_password(app, page: Page, base: str, live_server: str) -> None:
    """Open the system, sign in on the provider's 法人登录 tab (captcha), back signed in."""
    expect_signed_out(page, base)
    page.get_by_role("link", name="统一用户登录").click()
    expect(page).to_have_url(provider_login_page(live_server))
    login(app, page, UNIT_LOGIN, PASSWORD, tab="法人登录")
    expect_signed_in(page, base)


def backchannel_deliveries() -> set[tuple[str, bool]]:
    """(client id, delivered) of every logout token the provider has sent."""
    db.session.rollback()  # see what the server's threads committed
    jobs = db.session.execute(db.select(Job).filter_by(kind="backchannel_logout")).scalars()
    return {(job.payload["client_id"], job.done_at is not None) for job in jobs}


def enter_other_system(page: Page, other: str, live_server: str) -> list[str]:
    """Follow 进入另一个系统; returns every address the browser went to on the way (redirects
    included)."""
    shown: list[str] = []
    page.on("request", lambda request: shown.append(request.url)
            if request.is_navigation_request() and request.frame == page.main_frame else None)
    page.get_by_role("link", name=re.compile("进入另一个系统")).click()
    expect_signed_in(page, other)
    return shown


def test_one_sign_in_serves_both_systems_and_one_sign_out_ends_both(
        app, page: Page, live_server, systems, unit):
    gaoqi, kexiaoqi = systems["gaoqi"], systems["kexiaoqi"]

    sign_in_with_password(app, page, gaoqi, live_server)
    expect(page.locator("header h1")).to_have_text("高新技术企业认定")
    screenshot(page, "sso-gaoqi.png")

    shown = enter_other_system(page, kexiaoqi, live_server)
    assert not [url for url in shown if provider_login_page(live_server).match(url)], shown
    assert any(url.startswith(live_server + "/authorize") for url in shown), shown
    expect(page.locator("header h1")).to_have_text("科技型中小企业评价")
    expect(page.locator("input[type=password]")).to_have_count(0)
    screenshot(page, "sso-kexiaoqi.png")

    # Sign out at system 2: its own session, then the provider's end-session endpoint, which
    # tells system 1 by back-channel logout and sends the browser back to system 2.
    page.get_by_role("button", name="退出登录").click()
    expect(page).to_have_url(re.compile(re.escape(kexiaoqi) + r"/\?state="))
    expect(page.locator("#signed-out")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("您已退出登录")

    # The provider told both systems, and both accepted the logout token.
    assert backchannel_deliveries() == {("gaoqi", True), ("kexiaoqi", True)}
    expect_signed_out(page, gaoqi)  # the back-channel logout reached system 1

    # The single sign-on session is gone too: system 1 asks for the password again.
    page.get_by_role("link", name="统一用户登录").click()
    expect(page).to_have_url(provider_login_page(live_server))
    expect(page.locator("#password")).to_be_visible()


def test_signing_out_at_the_provider_signs_out_of_both_systems(
        app, page: Page, live_server, systems, unit):
    gaoqi, kexiaoqi = systems["gaoqi"], systems["kexiaoqi"]
    sign_in_with_password(app, page, gaoqi, live_server)
    enter_other_system(page, kexiaoqi, live_server)

    page.goto(live_server + "/logout")
    page.locator("button[name=logout][value=yes]").click()
    expect(page).to_have_url(provider_login_page(live_server))

    assert backchannel_deliveries() == {("gaoqi", True), ("kexiaoqi", True)}
    expect_signed_out(page, gaoqi)
    expect_signed_out(page, kexiaoqi)


def test_a_system_accepts_only_valid_logout_tokens_for_itself(app, live_server):
    """Back-Channel Logout §2.6, checked by the demo system: 400 for every flawed token, 200
    and the local sessions of that sid ended for a good one."""
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    from idp.oauth import keys
    from idp.oauth.backchannel import EVENT, logout_token
    from idp.oauth.server import sign

    system = create_demo_system("gaoqi", 5001, live_server, "unused")
    browser = system.test_client()
    with browser.session_transaction() as session:
        session.update(user={"sub": "u1", "account_type": "legal", "name": UNIT_NAME}, sub="u1", sid="s1")
    def home() -> str:
        return browser.get("/").get_data(as_text=True)

    assert 'id="signed-in"' in home()

    def post(token):
        response = browser.post("/oidc/backchannel-logout", data={"logout_token": token})
        assert response.headers["Cache-Control"] == "no-store"
        return response.status_code

    now = int(time.time())
    good = {"iss": live_server, "aud": "gaoqi", "iat": now, "exp": now + 120, "jti": "j1",
            "sub": "u1", "sid": "s1", "events": {EVENT: {}}}
    foreign_key = RSAKey.generate_key(2048)
    flawed = {
        "not a JWT": "abc.def",
        "empty": "",
        "another issuer": sign({**good, "iss": "https://other.example"}, typ="logout+jwt"),
        "another audience": sign({**good, "aud": "kexiaoqi"}, typ="logout+jwt"),
        "expired": sign({**good, "iat": now - 600, "exp": now - 480}, typ="logout+jwt"),
        "issued in the future": sign({**good, "iat": now + 600, "exp": now + 720}, typ="logout+jwt"),
        "no jti": sign({k: v for k, v in good.items() if k != "jti"}, typ="logout+jwt"),
        "no event": sign({**good, "events": {}}, typ="logout+jwt"),
        "neither sid nor sub": sign({k: v for k, v in good.items() if k not in ("sid", "sub")},
                                    typ="logout+jwt"),
        "a nonce": sign({**good, "nonce": "n"}, typ="logout+jwt"),
        "an ID token's type": sign(good, typ="JWT"),
        "a foreign key": jwt.encode({"alg": "RS256", "typ": "logout+jwt", "kid": keys.signing_key("RS256")[0]},
                                    good, foreign_key),
    }
    for flaw, token in flawed.items():
        assert post(token) == 400, flaw
    assert 'id="signed-in"' in home(), "a flawed token ended the session"

    token = logout_token("gaoqi", "u1", "s1")  # as the provider sends it
    assert post(token) == 200
    assert 'id="signed-out"' in home()
    assert post(token) == 400, "a logout token was accepted twice"
