"""Whole journeys through the pages: register, sign in, 我的信息, edit, sign out."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    browser_session,
    captcha_answer,
    last_sms_code,
    login,
    screenshot,
    sign_out,
)
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

RESIDENT_ID = "11010519491231002X"
RESIDENT_ID_MASKED = "110105********002X"
USCC = "91350100M000100Y43"
LEGAL_REP_ID = "440524188001010014"
LEGAL_REP_ID_MASKED = "440524********0014"


def row(page: Page, field: str):
    """The value cell of one row of the 我的信息 table."""
    return page.locator(f"tr[data-field='{field}'] td")


def type_password_watching_the_meter(page: Page) -> None:
    meter = page.locator("#password-strength")
    text = meter.locator(".strength-text")
    labels = json.loads(meter.get_attribute("data-labels"))
    expect(text).to_have_text("—")
    password = page.locator("#password")
    password.press_sequentially(PASSWORD[:4])  # "Pass": too short
    expect(meter).to_have_attribute("data-level", "0")
    expect(text).to_have_text(labels["0"])
    password.press_sequentially(PASSWORD[4:8])  # "Passw0rd": 8 characters, 3 classes
    expect(meter).to_have_attribute("data-level", "1")
    expect(text).to_have_text(labels["1"])
    password.press_sequentially(PASSWORD[8:])  # "Passw0rd!x": all 4 classes
    expect(meter).to_have_attribute("data-level", "2")
    expect(text).to_have_text(labels["2"])
    assert len({labels["0"], labels["1"], labels["2"], "—"}) == 4


def request_sms_code(app, page: Page) -> str:
    """Solve the SMS captcha, press 获取验证码, watch the countdown; the code from the phone."""
    page.locator("#sms-captcha").fill(captcha_answer(app, page, "sms"))
    send = page.locator("#send-code")
    expect(send).to_have_text("获取验证码")
    expect(send).to_be_enabled()
    send.click()
    expect(send).to_be_disabled()
    expect(send).to_have_text(re.compile(r"\d+"))
    expect(page.locator("#send-code-status")).not_to_be_empty()
    return last_sms_code(app)


def register_and_reach_login(page: Page, login_name: str, tab: str) -> None:
    page.get_by_role("button", name="注册账号").click()
    expect(page).to_have_url(re.compile(r"/register/done$"))
    expect(page.locator("main")).to_contain_text(login_name)
    page.locator("main").get_by_role("link", name="用户登录").click()
    expect(page).to_have_url(re.compile(r"/login\?type="))
    expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")


def test_a_natural_person_registers_signs_in_edits_the_profile_and_signs_out(app, page: Page):
    page.goto("/register")
    expect(page.get_by_role("link", name="自然人注册")).to_be_visible()
    screenshot(page, "register-choice.png")
    page.get_by_role("link", name="自然人注册").click()
    expect(page).to_have_url(re.compile(r"/register/natural$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("自然人注册")

    page.locator("#login_name").fill("wang_xiaoming")
    type_password_watching_the_meter(page)
    page.locator("#password_confirm").fill(PASSWORD)
    page.locator("#name").fill("王小明")
    page.locator("#identity_region").select_option("mainland")
    page.locator("#document_type").select_option("resident_id")
    page.locator("#document_number").fill(RESIDENT_ID)
    page.locator("#phone").fill("13800138000")
    page.locator("#sms_code").fill(request_sms_code(app, page))
    page.locator("#email").fill("wang.xiaoming@example.cn")
    register_and_reach_login(page, "wang_xiaoming", "自然人登录")
    screenshot(page, "login.png")

    login(app, page, "wang_xiaoming", PASSWORD, tab="自然人登录")
    expect(page).to_have_url(re.compile(r"/center/profile$"))
    expect(page.get_by_role("navigation").get_by_role("link", name="我的信息")).to_have_attribute(
        "aria-current", "page")
    expect(row(page, "login_name")).to_have_text("wang_xiaoming")
    expect(row(page, "name")).to_have_text("王小明")
    expect(row(page, "document_number")).to_have_text(RESIDENT_ID_MASKED)
    expect(row(page, "phone")).to_have_text("138****8000")
    assert RESIDENT_ID not in page.content()
    screenshot(page, "profile-natural.png")

    page.get_by_role("link", name="修改个人信息").click()
    expect(page).to_have_url(re.compile(r"/center/profile/edit$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("修改个人信息")
    assert RESIDENT_ID not in page.content()
    page.locator("#job_title").fill("研究员")
    page.locator("#ethnicity").select_option("汉族")
    page.locator("#address").fill("北京市海淀区中关村南大街5号")
    screenshot(page, "edit-natural.png")
    page.get_by_role("button", name="保存").click()

    expect(page).to_have_url(re.compile(r"/center/profile$"))
    expect(page.get_by_role("status").first).to_be_visible()  # saved, and verified at once
    expect(row(page, "job_title")).to_have_text("研究员")
    expect(row(page, "ethnicity")).to_have_text("汉族")
    expect(row(page, "address")).to_have_text(re.compile(r"^北京市.*\*+$"))
    expect(row(page, "document_number")).to_have_text(RESIDENT_ID_MASKED)  # kept: left empty
    assert "中关村南大街5号" not in page.content()

    sign_out(page)
    assert "account_id" not in browser_session(app, page.context)
    page.goto("/center/profile")
    expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)center(/|%2F)profile$"))


def test_a_legal_entity_registers_signs_in_on_the_legal_tab_edits_and_signs_out(app, page: Page):
    page.goto("/register")
    page.get_by_role("link", name="单位用户（法人）注册").click()
    expect(page).to_have_url(re.compile(r"/register/legal$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("单位用户（法人）注册")

    page.locator("#login_name").fill("fz_keji")
    page.locator("#password").fill(PASSWORD)
    expect(page.locator("#password-strength")).to_have_attribute("data-level", "2")
    page.locator("#password_confirm").fill(PASSWORD)
    page.locator("#org_name").fill("福州示例科技有限公司")
    page.locator("#org_kind").select_option("enterprise")
    page.locator("#org_region").select_option("domestic")
    region_label = page.locator("#org_region option:checked").inner_text().strip()
    page.locator("#uscc").fill(USCC)
    page.locator("#name").fill("李四")
    page.locator("#phone").fill("13900139000")
    page.locator("#sms_code").fill(request_sms_code(app, page))
    page.locator("#email").fill("contact@fz-keji.example.cn")
    screenshot(page, "register-legal.png")
    register_and_reach_login(page, "fz_keji", "法人登录")
    screenshot(page, "login-legal.png")

    login(app, page, "fz_keji", PASSWORD, tab="法人登录")
    expect(page).to_have_url(re.compile(r"/center/profile$"))
    expect(row(page, "login_name")).to_have_text("fz_keji")
    expect(row(page, "org_name")).to_have_text("福州示例科技有限公司")
    expect(row(page, "uscc")).to_have_text(USCC)
    expect(row(page, "org_region")).to_have_text(region_label)
    expect(row(page, "name")).to_have_text("李四")
    expect(row(page, "phone")).to_have_text("139****9000")
    screenshot(page, "profile-legal.png")

    page.get_by_role("link", name="修改法人信息").click()
    expect(page).to_have_url(re.compile(r"/center/profile/edit$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("修改法人信息")
    page.locator("#legal_rep_name").fill("王五")
    page.locator("#legal_rep_document_type").select_option("resident_id")
    page.locator("#legal_rep_document_number").fill(LEGAL_REP_ID)
    screenshot(page, "edit-legal.png")
    page.get_by_role("button", name="保存").click()

    expect(page).to_have_url(re.compile(r"/center/profile$"))
    expect(row(page, "legal_rep_name")).to_have_text("王五")
    expect(row(page, "legal_rep_document_number")).to_have_text(LEGAL_REP_ID_MASKED)
    expect(row(page, "uscc")).to_have_text(USCC)
    assert LEGAL_REP_ID not in page.content()

    page.get_by_role("link", name="修改法人信息").click()
    assert LEGAL_REP_ID not in page.content()  # the edit page shows it masked too
    expect(page.locator("#legal_rep_document_number")).to_have_value("")

    sign_out(page)
    page.goto("/center/profile")
    expect(page).to_have_url(re.compile(r"/login\?next="))
