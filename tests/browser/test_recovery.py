"""Password recovery in the browser: 忘记密码 → 登录名重置密码 for a person (SMS code) and a unit,
the e-mail link, the appeals of a person and a unit up to the forced change of the temporary
password, and the page of a disabled account. Screenshots of the key pages go to
docs/screenshots/recovery-*.png."""

from __future__ import annotations

import re

import pytest
from PIL import Image
from playwright.sync_api import Page, expect
from sqlalchemy import select

from idp import cases, unit_of_work
from idp.extensions import db
from idp.models.accounts import DISABLED
from idp.models.cases import PASSWORD_APPEAL, ReviewCase
from tests.admin.conftest import staff_member  # noqa: F401 (fixture)
from tests.browser.conftest import captcha_answer, last_sms_code, login, screenshot
from tests.conftest import make_account
from tests.recovery.conftest import mails, outbox

pytestmark = pytest.mark.browser

NEW_PASSWORD = "N3w-Secret!x"
UNIT = {"org_name": "福州示例有限公司", "uscc": "91350100M000100Y43"}


@pytest.fixture
def settings(settings):
    settings["RECOVERY_ANSWER_FLOOR"] = 0
    return settings


def _photo(tmp_path, name):
    path = tmp_path / name
    Image.new("RGB", (80, 50), (30, 90, 160)).save(path, "JPEG")
    return str(path)


def _find_login_name(app, page: Page, login_name: str, kind: str = "natural") -> None:
    page.goto("/login")
    page.get_by_role("link", name="忘记密码?").click()
    expect(page.get_by_role("heading", name="选择找回密码方式")).to_be_visible()
    page.get_by_role("link", name="登录名重置密码").click()
    page.locator(f"input[name=account_type][value={kind}]").check()
    page.locator("#login_name").fill(login_name)
    page.locator("#captcha").fill(captcha_answer(app, page, "recovery"))
    page.get_by_role("button", name="检索登录名").click()
    expect(page.locator("[data-login-name]")).to_have_text(login_name)


def _reset_by_phone(app, page: Page, shots: str | None = None, unit: dict | None = None) -> None:
    for name, value in (unit or {}).items():
        page.locator(f"#{name}").fill(value)
    page.locator("#phone").fill("13800138000")
    page.locator("#phone_confirm").fill("13800138000")
    page.locator("#reason").fill("忘记密码")
    page.get_by_role("button", name="获取验证码").click()
    expect(page.locator("[data-reason=sent]")).to_be_visible()
    for name, value in (unit or {}).items():
        page.locator(f"#{name}").fill(value)
    page.locator("#phone").fill("13800138000")
    page.locator("#phone_confirm").fill("13800138000")
    page.locator("#new_password").fill(NEW_PASSWORD)
    page.locator("#new_password_confirm").fill(NEW_PASSWORD)
    expect(page.locator("#password-strength")).to_have_attribute("data-level", re.compile("[23]"))
    page.locator("#sms_code").fill(last_sms_code(app))
    if shots:
        screenshot(page, shots)
    page.get_by_role("button", name="确定", exact=True).click()
    expect(page.get_by_text("重置密码已完成")).to_be_visible()


def test_a_person_resets_the_password_by_login_name(app, page: Page):
    make_account()
    page.goto("/password/forgot")
    screenshot(page, "recovery-chooser.png")
    _find_login_name(app, page, "zhang_san")
    _reset_by_phone(app, page, "recovery-reset-person.png")
    screenshot(page, "recovery-done.png")
    page.get_by_role("link", name="确定，并跳转至政务服务平台").click()
    login(app, page, "zhang_san", NEW_PASSWORD)
    expect(page).to_have_url(re.compile(r"/center/profile"))


def test_a_unit_resets_the_password_with_unit_name_and_uscc(app, page: Page):
    make_account("legal", "fz_unit")
    _find_login_name(app, page, "fz_unit", "legal")
    _reset_by_phone(app, page, "recovery-reset-unit.png", unit=UNIT)
    login(app, page, "fz_unit", NEW_PASSWORD, tab="法人登录")
    expect(page).to_have_url(re.compile(r"/center/profile"))


def test_a_person_resets_the_password_by_the_emailed_link(app, page: Page):
    account = make_account(email="zhangsan@example.cn")
    account.email_verified = True
    db.session.commit()
    _find_login_name(app, page, "zhang_san")
    page.get_by_role("link", name="电子邮箱", exact=True).click()
    page.locator("#email").fill("zhangsan@example.cn")
    page.locator("#email_confirm").fill("zhangsan@example.cn")
    page.get_by_role("button", name="发送重置链接").click()
    expect(page.locator("[data-reason=sent]")).to_be_visible()
    link = [m for m in mails(app) if m["template"] == "password_reset_link"][-1]["params"]["link"]
    page.goto(link)
    page.locator("#new_password").fill(NEW_PASSWORD)
    page.locator("#new_password_confirm").fill(NEW_PASSWORD)
    page.get_by_role("button", name="确定", exact=True).click()
    expect(page.get_by_text("重置密码已完成")).to_be_visible()
    page.goto(link)
    expect(page.locator("[data-reason=link_used_or_replaced]")).to_be_visible()


def test_a_disabled_account_is_told_to_contact_support(app, page: Page):
    account = make_account()
    account.status = DISABLED
    db.session.commit()
    _find_login_name(app, page, "zhang_san")
    _reset_by_phone_expecting_refusal(app, page)
    expect(page.locator("[data-reason=account_disabled]")).to_contain_text("010-88659000")
    screenshot(page, "recovery-disabled.png")


def _reset_by_phone_expecting_refusal(app, page: Page) -> None:
    page.locator("#phone").fill("13800138000")
    page.locator("#phone_confirm").fill("13800138000")
    page.get_by_role("button", name="获取验证码").click()
    page.locator("#phone").fill("13800138000")
    page.locator("#phone_confirm").fill("13800138000")
    page.locator("#new_password").fill(NEW_PASSWORD)
    page.locator("#new_password_confirm").fill(NEW_PASSWORD)
    page.locator("#sms_code").fill(last_sms_code(app))
    page.get_by_role("button", name="确定", exact=True).click()


def _send_appeal_code(app, page: Page, phone: str) -> None:
    page.locator("#phone").fill(phone)
    page.locator("#sms-captcha").fill(captcha_answer(app, page, "sms"))
    page.get_by_role("button", name="获取验证码").click()
    expect(page.locator("#send-code-status")).to_have_class(re.compile("ok"))
    page.locator("#sms_code").fill(last_sms_code(app))


def _approve_appeal(staff_member) -> None:
    case = db.session.execute(select(ReviewCase).where(ReviewCase.case_type == PASSWORD_APPEAL)).scalar_one()
    staff = staff_member("reviewer")
    with unit_of_work.unit():  # as the console's request: committed, then its SMS goes out
        cases.claim(case, staff)
        cases.approve(case, staff)


def _forced_change(app, page: Page, login_name: str, tab: str) -> None:
    temporary = [m for m in outbox(app) if m["template"] == "appeal_approved"][-1]["params"]["password"]
    login(app, page, login_name, temporary, tab=tab)
    expect(page).to_have_url(re.compile(r"/login/update-password"))
    page.locator("#password").fill("Mine-0wn!pass")
    page.locator("#password_confirm").fill("Mine-0wn!pass")
    page.get_by_role("button", name="保存").click()
    expect(page).not_to_have_url(re.compile(r"/login/update-password"))


def test_a_person_appeals_and_signs_in_with_the_temporary_password(app, page: Page, tmp_path, staff_member):
    make_account(identity_region="mainland", document_type="resident_id", document_number="11010519491231002X")
    page.goto("/password/forgot")
    page.get_by_role("link", name="自然人申诉找回密码").click()
    page.locator("#name").fill("张三")
    page.locator("#document_number").fill("11010519491231002X")
    page.locator("#id_front").set_input_files(_photo(tmp_path, "front.jpg"))
    page.locator("#id_back").set_input_files(_photo(tmp_path, "back.jpg"))
    _send_appeal_code(app, page, "13900139000")
    screenshot(page, "recovery-appeal-person.png")
    page.get_by_role("button", name="下一步").click()
    expect(page.locator("[data-reason=appeal_submitted]")).to_be_visible()
    screenshot(page, "recovery-appeal-submitted.png")
    _approve_appeal(staff_member)
    _forced_change(app, page, "zhang_san", "自然人登录")


def test_a_unit_appeals_after_finding_its_name(app, page: Page, tmp_path, staff_member):
    make_account("legal", "fz_unit")
    page.goto("/password/forgot")
    page.get_by_role("link", name="单位法人用户申诉找回密码").click()
    page.locator("#org_name").fill(UNIT["org_name"])
    page.locator("#captcha").fill(captcha_answer(app, page, "recovery"))
    page.get_by_role("button", name="检索单位名称").click()
    expect(page.locator("[data-unit]")).to_have_text(UNIT["org_name"])
    page.locator("#uscc").fill(UNIT["uscc"])
    page.locator("#legal_rep_name").fill("李四")
    page.locator("#name").fill("王五")
    page.locator("#business_licence").set_input_files(_photo(tmp_path, "licence.jpg"))
    page.locator("#authorisation_letter").set_input_files(_photo(tmp_path, "letter.jpg"))
    _send_appeal_code(app, page, "13900139000")
    screenshot(page, "recovery-appeal-unit.png")
    page.get_by_role("button", name="下一步").click()
    expect(page.locator("[data-reason=appeal_submitted]")).to_be_visible()
    _approve_appeal(staff_member)
    _forced_change(app, page, "fz_unit", "法人登录")
