"""科技部政务服务平台（个人/企业）账号检索 in a browser: every case answered in the seed's words with
its link, and a Torch unit's journey from the lookup to its first sign-in (the legacy password,
the real-name data to complete)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from idp.extensions import db
from idp.legacy.service import import_file
from tests import legacy_export as export
from tests.browser.conftest import captcha_answer, screenshot
from tests.conftest import PASSWORD, make_account
from tests.integration.test_account_lookup import CASES, LINKS
from tests.unit.test_legacy_hashes import legacy_hashes

pytestmark = pytest.mark.browser

LEGACY_PASSWORD = "Torch2019!x"


@pytest.fixture
def imported(app, tmp_path):
    export.existing_accounts(make_account, PASSWORD)
    make_account("legal", login_name="unit_ninety_eight", uscc=export.uscc(98))
    path = tmp_path / "torch.csv"
    path.write_bytes(export.to_csv(export.scenario_rows(legacy_hashes(LEGACY_PASSWORD))))
    import_file(path, checkpoint=db.session.commit, started_by="test")
    db.session.commit()


def look_up(app, page: Page, **fields) -> None:
    page.goto("/account-lookup")
    for name, value in fields.items():
        page.locator(f"#{name}").fill(value)
    page.locator("#captcha").fill(captcha_answer(app, page, "lookup"))
    page.get_by_role("button", name="检索").click()
    page.wait_for_load_state()


def test_each_case_is_answered_in_the_seeds_words_with_its_link(app, page: Page, imported):
    for case in sorted(CASES):
        fields, words, login_name = CASES[case]
        look_up(app, page, **fields)
        answer = page.locator(".lookup-answer")
        expect(answer).to_have_attribute("data-case", case)
        expect(answer).to_contain_text(words)
        if login_name:
            expect(answer.locator(".login-name")).to_have_text(login_name)
        else:
            expect(answer.locator(".login-name")).to_have_count(0)
        path, _, query = LINKS[case].partition("?")
        link = answer.locator(f"a[href^='{path}']")
        expect(link.first).to_be_visible()
        if query:
            expect(link.first).to_have_attribute("href", re.compile(re.escape(query)))
        if case == "unit_3":
            screenshot(page, "account-lookup.png")


def test_a_wrong_uscc_is_shown_at_its_field(app, page: Page, imported):
    look_up(app, page, uscc="91350100000000001X")
    expect(page.locator("#uscc-error")).to_contain_text("统一社会信用代码")
    expect(page.locator(".lookup-answer")).to_have_count(0)


def test_from_the_lookup_to_the_first_sign_in_of_a_torch_unit(app, page: Page, imported):
    look_up(app, page, uscc=export.U1)
    page.locator(".lookup-answer a[href*='type=legal']").click()
    expect(page.get_by_role("tab", name="法人登录")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#login_name")).to_have_value(export.U1)

    page.locator("#password").fill(LEGACY_PASSWORD)
    page.locator("#captcha").fill(captcha_answer(app, page))
    page.get_by_role("button", name="用户登录", exact=True).click()

    expect(page).to_have_url(re.compile(r"/login/complete-real-name$"))
    expect(page.locator("h1")).to_have_text("完善实名信息")
    page.locator("#legal_rep_name").fill("钱七")
    page.locator("#legal_rep_document_number").fill("11010519491231002X")
    screenshot(page, "legacy-complete-real-name.png")
    page.get_by_role("button", name="保存并继续").click()
    expect(page).to_have_url(re.compile(r"/center/profile$"))
