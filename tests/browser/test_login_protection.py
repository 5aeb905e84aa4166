"""The login page refusing: a locked account, the wrong tab."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import browser_session, captcha_answer, login, screenshot
from tests.conftest import PASSWORD, make_account

pytestmark = pytest.mark.browser

TIME = re.compile(r"\d{1,2}:\d{2}")


def notice(page: Page):
    return page.locator(".login-card .notice.error")


def test_five_wrong_passwords_lock_the_account_and_the_right_one_is_then_refused(app, page: Page):
    make_account(login_name="li_si")
    page.goto("/login")

    for attempt in range(1, 5):
        login(app, page, "li_si", f"Wrong-pass{attempt}")
        expect(notice(page)).to_have_attribute("data-reason", "invalid_credentials")
        expect(notice(page)).not_to_contain_text("锁定")

    login(app, page, "li_si", "Wrong-pass5")
    expect(notice(page)).to_have_attribute("data-reason", "account_locked")
    expect(notice(page)).to_contain_text("锁定")
    expect(notice(page)).to_contain_text(TIME)
    screenshot(page, "login-locked.png")

    login(app, page, "li_si", PASSWORD)
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(notice(page)).to_have_attribute("data-reason", "account_locked")
    expect(notice(page)).to_contain_text("锁定")
    expect(notice(page)).to_contain_text(TIME)
    assert "account_id" not in browser_session(app, page.context)


def test_a_legal_account_on_the_natural_tab_is_told_to_use_the_legal_tab(app, page: Page):
    make_account("legal", login_name="fz_unit")
    page.goto("/login")

    login(app, page, "fz_unit", PASSWORD, tab="自然人登录")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(notice(page)).to_have_attribute("data-reason", "wrong_account_type")
    expect(notice(page)).to_contain_text("法人登录")
    assert "account_id" not in browser_session(app, page.context)

    login(app, page, "fz_unit", PASSWORD, tab="法人登录")
    expect(page).to_have_url(re.compile(r"/center/profile$"))


def test_after_a_failed_sign_in_the_captcha_box_is_empty_for_the_new_image(app, page: Page):
    make_account(login_name="li_si")
    page.goto("/login")

    login(app, page, "li_si", "Wrong-pass1")
    expect(notice(page)).to_have_attribute("data-reason", "invalid_credentials")
    expect(page.locator("#login_name")).to_have_value("li_si")
    expect(page.locator("#password")).to_have_value("")
    # The answer typed for the old image is spent; a new image is shown, so the box must be
    # empty rather than hold the old answer the person has to delete first.
    expect(page.locator("#captcha")).to_have_value("")


def test_clicking_the_captcha_image_shows_a_new_challenge_and_voids_the_old_one(app, page: Page):
    page.goto("/login")
    old = captcha_answer(app, page)
    old_challenge = browser_session(app, page.context)["captcha_login"]
    image = page.locator("img[src*='/captcha/login.png']")
    with page.expect_response(lambda r: "/captcha/login.png" in r.url):
        page.locator("button.captcha-img").click()
    expect(image).to_have_attribute("src", re.compile(r"\?t=\d+"))
    new_challenge = browser_session(app, page.context)["captcha_login"]
    assert new_challenge != old_challenge
    assert captcha_answer(app, page)  # the new challenge is live
    make_account(login_name="li_si")
    page.fill("#login_name", "li_si")
    page.fill("#password", PASSWORD)
    page.fill("#captcha", old)  # the answer to the replaced image
    page.locator("form button[type=submit]").click()
    expect(page.locator("#captcha-error")).to_be_visible()
    assert "account_id" not in browser_session(app, page.context)
