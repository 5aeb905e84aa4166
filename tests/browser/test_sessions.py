"""The server-side session under the parallel requests a page makes while it loads."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import browser_session

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(settings):
    # Thirty rounds fetch more images than one address may per minute.
    settings["CAPTCHA_MAX_PER_ADDRESS_PER_MINUTE"] = 1000
    return settings

# After a failed login the page loads its style sheet, its script and a new captcha image at
# once. Sends a wrong login (which spends the challenge), then fetches a new image while the
# style sheet is fetched again and again, as a slow page would.
FAILED_LOGIN_THEN_IMAGE_AMONG_STYLE_SHEETS = """async () => {
    const form = new URLSearchParams(new FormData(document.querySelector('main form')));
    form.set('login_name', 'nobody'); form.set('password', 'wrong'); form.set('captcha', 'AAAA');
    await fetch('/login', {method: 'POST', body: form});
    let done = false;
    const image = fetch('/captcha/login.png?t=' + Math.random())
        .then(response => response.blob()).then(() => { done = true; });
    const others = [];
    while (!done) {
        others.push(fetch('/static/site.css?n=' + Math.random()));
        await new Promise(resolve => setTimeout(resolve, 1));
    }
    await Promise.all([image, ...others]);
}"""


def test_a_captcha_issued_while_the_page_loads_other_files_is_kept_in_the_session(app, page: Page):
    page.goto("/login")
    captcha = app.extensions["idp.services"].captcha
    lost = 0
    rounds = 30
    for _ in range(rounds):
        page.evaluate(FAILED_LOGIN_THEN_IMAGE_AMONG_STYLE_SHEETS)
        challenge = browser_session(app, page.context).get("captcha_login")
        if not challenge or not captcha.peek(challenge):
            lost += 1
    assert lost == 0, (
        f"in {lost} of {rounds} rounds the new captcha's challenge was overwritten by a parallel "
        "request's copy of the session: the person is told the captcha is wrong")
