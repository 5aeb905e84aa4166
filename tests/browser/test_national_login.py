"""Sign-in with the national platform in Chromium: the first time (linking an existing account
with its password) and a later time (straight through), against a second instance of this
provider served as the national platform (tests/federation/conftest.py)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from idp.extensions import db
from idp.models.federation import UpstreamLink
from tests.browser.conftest import screenshot
from tests.conftest import PASSWORD, make_account
from tests.federation.conftest import _upstream_listening, upstream, upstream_clock, upstream_database  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(settings, _upstream_listening):
    server, _ = _upstream_listening
    # Another host name than ours (127.0.0.1): a browser keeps cookies per host, not per port,
    # and both providers call their cookie idp_session.
    settings.update(NATIONAL_ISSUER=f"http://localhost:{server.server_port}", NATIONAL_CLIENT_ID="idp-under-test",
                    NATIONAL_CLIENT_SECRET="s3cret-of-the-provider-under-test-at-the-platform")
    return settings


def sign_in_at_the_platform(page: Page, upstream) -> None:
    """On the provider's login page: the national platform's button, then its login page."""
    page.goto("/login")
    page.locator("a[data-link=national]").click()
    expect(page).to_have_url(re.compile(re.escape(upstream.issuer) + r"/login\?"))
    page.locator("#login_name").fill("li_si")
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="用户登录", exact=True).click()
    page.wait_for_load_state()


def test_a_first_sign_in_links_an_existing_account_and_a_later_one_goes_straight_through(
        app, page: Page, live_server, upstream):
    upstream.person()
    mine = make_account("natural", "wang_wu", name="王五", phone="13600136000")

    sign_in_at_the_platform(page, upstream)
    expect(page).to_have_url(live_server + "/login/national/first")
    expect(page.locator("form[data-form=link]")).to_be_visible()
    screenshot(page, "national-first-sign-in.png")
    link_form = page.locator("form[data-form=link]")
    link_form.locator("#login_name").fill("wang_wu")
    link_form.locator("#password").fill(PASSWORD)
    link_form.get_by_role("button", name="关联并登录").click()
    expect(page).to_have_url(live_server + "/center/profile")
    db.session.expire_all()
    link = db.session.execute(db.select(UpstreamLink)).scalar_one()
    assert link.account_id == mine.id

    page.goto("/center/national")
    expect(page.locator("table[data-table=upstream-links] tr[data-link-id]")).to_have_count(1)
    screenshot(page, "national-link-in-user-centre.png")

    # Signing out here signs out at the platform too (RP-initiated logout), back to our login page.
    page.goto("/logout")
    page.locator("button[name=logout][value=yes]").click()
    expect(page).to_have_url(re.compile(re.escape(live_server) + r"/login(\?|$)"))

    # A later sign-in: the platform's login, then straight into the account.
    sign_in_at_the_platform(page, upstream)
    expect(page).to_have_url(live_server + "/center/profile")
    expect(page.locator("body")).to_contain_text("wang_wu")
    screenshot(page, "national-later-sign-in.png")
