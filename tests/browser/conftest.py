"""Browser journeys: the provider served on a loopback port, driven by Debian's chromium.

The app of the shared ``app`` fixture is served by werkzeug in a background thread for one
test. The listening socket is opened first (port 0) so the issuer can name the real port
before the app is built; the server dispatches to the app once it exists. The in-process store
lets a test read what a person would read off the screen or the phone: the captcha answer
(through the server-side session named by the ``idp_session`` cookie) and the SMS code
(the outbox file).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from tests.conftest import outbox_codes
from tests.live_server import _listening, live_server, settings  # noqa: F401 (fixtures of this suite)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}

expect.set_options(timeout=5_000)


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _new_context(browser, base_url: str, viewport: dict) -> BrowserContext:
    context = browser.new_context(base_url=base_url, locale="zh-CN", viewport=viewport)
    context.set_default_timeout(10_000)
    return context


@pytest.fixture
def context(browser, live_server):
    context = _new_context(browser, live_server, DESKTOP)
    yield context
    context.close()


@pytest.fixture
def page(context) -> Page:
    return context.new_page()


@pytest.fixture
def phone_page(browser, live_server):
    context = _new_context(browser, live_server, PHONE)
    yield context.new_page()
    context.close()


# --- what the person at the browser can see, read from the server side ------------------------


def browser_session(app, context: BrowserContext) -> dict:
    """The server-side session of the browser: the store entry named by its idp_session cookie."""
    cookie = next((c for c in context.cookies() if c["name"] == "idp_session"), None)
    if cookie is None:
        return {}
    raw = app.extensions["idp.services"].store.get("session:" + cookie["value"])
    return json.loads(raw) if raw else {}


def _loaded(page: Page, image) -> None:
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())


def captcha_answer(app, page: Page, purpose: str = "login") -> str:
    """The answer of the captcha image on the page, as a person would read it.

    Call only once the page (and so its image) has loaded: every image fetch issues a new
    challenge. The image must not be clicked afterwards.
    """
    page.wait_for_load_state()
    image = page.locator(f"img[src*='/captcha/{purpose}.png']")
    expect(image).to_be_visible()
    _loaded(page, image)
    challenge = browser_session(app, page.context).get(f"captcha_{purpose}")
    assert challenge, f"the session holds no {purpose} captcha challenge"
    answer = app.extensions["idp.services"].captcha.peek(challenge)
    assert answer, "the captcha challenge has expired or was spent"
    return answer


def last_sms_code(app) -> str:
    codes = outbox_codes(app)
    assert codes, "no SMS code in the outbox"
    return codes[-1]


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def login(app, page: Page, login_name: str, password: str, tab: str = "自然人登录") -> None:
    """Fill and send the login form on the named tab with a freshly solved captcha."""
    if not page.url.split("?")[0].endswith("/login"):
        page.goto("/login")
    page.get_by_role("tab", name=tab).click()
    expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
    page.locator("#login_name").fill(login_name)
    page.locator("#password").fill(password)
    page.locator("#captcha").fill(captcha_answer(app, page))
    page.get_by_role("button", name="用户登录", exact=True).click()
    page.wait_for_load_state()


def sign_out(page: Page) -> None:
    page.goto("/logout")
    page.locator("button[name=logout][value=yes]").click()
    expect(page).to_have_url(re.compile(r"/login(\?|$)"))
from tests.admin.conftest import staff_member  # noqa: F401
