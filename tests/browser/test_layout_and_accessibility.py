"""Phone-width layout and the accessibility basics of the forms."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PHONE, screenshot

pytestmark = pytest.mark.browser

CONTROLS = "main form input:not([type=hidden]), main form select, main form textarea, main form button"


def assert_fits_the_phone(page: Page) -> None:
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} scrolls sideways: {width}px wide"
    controls = page.locator(CONTROLS)
    assert controls.count() > 0
    for control in controls.all():
        expect(control).to_be_visible()
        box = control.bounding_box()
        name = control.get_attribute("id") or control.get_attribute("name") or control.inner_text()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (
            f"{page.url}: {name} sticks out of the screen: {box}")


def test_the_login_and_registration_pages_fit_a_phone_screen_without_sideways_scrolling(phone_page: Page):
    phone_page.goto("/login")
    assert_fits_the_phone(phone_page)
    screenshot(phone_page, "login-phone.png")

    phone_page.goto("/register/natural")
    assert_fits_the_phone(phone_page)


def assert_every_input_has_a_label(page: Page) -> None:
    unlabelled = page.evaluate("""() =>
        [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
          .filter(el => !el.id || !document.querySelector(`label[for="${CSS.escape(el.id)}"]`))
          .map(el => el.name || el.outerHTML)""")
    assert unlabelled == [], f"{page.url}: inputs without a <label for>: {unlabelled}"


def test_registration_errors_are_tied_to_their_inputs_and_every_input_has_a_label(page: Page):
    page.goto("/register/natural")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    assert_every_input_has_a_label(page)

    page.locator("#login_name").fill("ab")
    page.locator("#password").fill("abc")
    page.locator("#password_confirm").fill("abd")
    page.locator("#document_number").fill("110105194912310021")  # wrong check digit
    page.locator("#phone").fill("12345")
    page.locator("#email").fill("not-an-e-mail")
    page.get_by_role("button", name="注册账号").click()
    page.wait_for_load_state()

    expect(page.locator(".notice.error")).to_be_visible()
    invalid = page.locator(".field.has-error")
    expect(invalid.first).to_be_visible()
    problems = page.evaluate("""() => [...document.querySelectorAll('.field.has-error')].map(field => {
        const input = field.querySelector('input:not([type=hidden]), select, textarea');
        const error = field.querySelector('.error');
        const described = (input.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean)
          .map(id => document.getElementById(id));
        return {
          name: input.name,
          invalid: input.getAttribute('aria-invalid'),
          errorText: error ? error.textContent.trim() : '',
          describedTexts: described.map(el => el ? el.textContent.trim() : null),
        };
    })""")
    names = {p["name"] for p in problems}
    assert {"login_name", "password", "password_confirm", "name", "document_number", "phone",
            "sms_code", "email"} <= names, names
    for problem in problems:
        assert problem["invalid"] == "true", problem
        assert problem["errorText"], problem
        assert problem["errorText"] in problem["describedTexts"], problem
    aria_invalid = page.evaluate(
        "() => [...document.querySelectorAll('[aria-invalid=true]')].map(el => el.name)")
    assert set(aria_invalid) == names
    assert_every_input_has_a_label(page)
    page.locator("#document_number").scroll_into_view_if_needed()
    screenshot(page, "register-natural.png")

    page.goto("/register/legal")
    assert_every_input_has_a_label(page)
    page.goto("/login")
    assert_every_input_has_a_label(page)
