"""The delegation journey in a browser (issue 14): a verified unit authorises a person on
用户授权管理; the person accepts under 法人(单位)授权办理情况; signing in to the demo system
高新技术企业认定 (a real HTTP server, for units) the person chooses 代表 〈unit〉 办理 and the system
shows whom they act for; the unit revokes, and the system's session ends by back-channel logout."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from idp.extensions import db
from idp.models.delegations import Delegation
from tests.browser.conftest import login, screenshot
from tests.browser.test_sso import (UNIT_NAME, backchannel_deliveries, expect_signed_out,  # noqa: F401
                                    provider_login_page, systems)
from tests.conftest import PASSWORD, make_account

pytestmark = pytest.mark.browser


@pytest.fixture
def verified_unit(app):
    unit = make_account("legal", "deleg_unit", PASSWORD, name="李四")
    unit.verification_status = "verified_manual"
    db.session.commit()
    return unit


@pytest.fixture
def person(app):
    return make_account("natural", "zhang_san", PASSWORD, name="张三")


def test_a_person_acts_for_a_unit_until_the_unit_revokes(app, browser, page: Page, live_server, systems,
                                                          verified_unit, person):
    gaoqi = systems["gaoqi"]
    # The unit authorises 张三 for 高新技术企业认定.
    login(app, page, "deleg_unit", PASSWORD, tab="法人登录")
    page.goto("/account/delegations")
    expect(page.get_by_role("heading", name="用户授权管理")).to_be_visible()
    page.locator("#login_name").fill("zhang_san")
    page.locator("#name").fill("张三")
    page.get_by_label("高新技术企业认定").check()
    page.get_by_role("button", name="授权", exact=True).click()
    expect(page.locator("tr[data-state='pending']")).to_contain_text("zhang_san")
    screenshot(page, "delegation-unit.png")

    # The person accepts, in another browser.
    person_context = browser.new_context(base_url=live_server, locale="zh-CN")
    person_page = person_context.new_page()
    login(app, person_page, "zhang_san", PASSWORD)
    person_page.goto("/account/delegations")
    expect(person_page.get_by_role("heading", name="法人(单位)授权办理情况")).to_be_visible()
    person_page.get_by_role("button", name="接受").click()
    expect(person_page.locator("tr[data-state='active']")).to_contain_text(UNIT_NAME)

    # Signing in to the system for units: the choice, then the system says whom they act for.
    person_page.goto(gaoqi + "/")
    person_page.get_by_role("link", name="统一用户登录").click()
    expect(person_page.get_by_role("heading", name="选择办理身份")).to_be_visible()
    expect(person_page.get_by_role("button", name="以本人身份办理")).to_be_disabled()
    screenshot(person_page, "delegation-choice.png")
    person_page.get_by_role("button", name=f"代表 {UNIT_NAME} 办理").click()
    expect(person_page).to_have_url(gaoqi + "/")
    expect(person_page.locator("#acting-for")).to_contain_text(UNIT_NAME)
    expect(person_page.locator("tr[data-field='acting_as'] td")).to_have_text(f"张三 代表 {UNIT_NAME}")
    screenshot(person_page, "delegation-demo-system.png")

    # The unit revokes: the system hears it at once (back-channel logout) and ends its session.
    page.goto("/account/delegations")
    page.get_by_role("button", name="撤销授权").click()
    expect(page.locator("tr[data-state='revoked']")).to_have_count(1)
    assert ("gaoqi", True) in backchannel_deliveries()
    db.session.rollback()
    assert db.session.execute(db.select(Delegation.status)).scalar_one() == "revoked"
    person_page.goto(gaoqi + "/")
    expect(person_page.locator("#signed-out")).to_be_visible()
    # Signing in again: no unit to act for any more, and the system serves units only.
    person_page.get_by_role("link", name="统一用户登录").click()
    expect(person_page).not_to_have_url(re.compile(re.escape(gaoqi)))
    expect(person_page.locator("[data-reason]").first).not_to_have_attribute("data-reason", "select_account")
    person_context.close()
