"""Real-name verification in the browser: the automatic and the manual path for both types."""

from __future__ import annotations


import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from idp import cases, unit_of_work
from idp.extensions import db, services
from idp.services.verifier import Verdict
from tests.browser.conftest import login, screenshot
from tests.conftest import PASSWORD, make_account

pytestmark = pytest.mark.browser


class Mismatch:
    method = "national_platform"

    def verify_person(self, *args):
        return Verdict("mismatch", "x")

    def verify_unit(self, *args):
        return Verdict("mismatch", "x")


def _png(tmp_path, name):
    path = tmp_path / name
    Image.new("RGB", (60, 40), (120, 30, 30)).save(path, "PNG")
    return str(path)


def _person(**profile):
    return make_account("natural", "zhang_san", identity_region="mainland", document_type="resident_id", **profile)


def _unit():
    return make_account("legal", "unit_one")


def test_a_person_saves_identity_data_and_is_verified_automatically(app, page: Page):
    _person()
    login(app, page, "zhang_san", PASSWORD)
    page.goto("/center/profile/edit")
    page.locator("#document_number").fill("11010519491231002X")
    page.get_by_role("button", name="保存").click()
    expect(page.locator("p.status")).to_have_attribute("data-status", "verified_auto")
    expect(page.locator("p.status")).to_contain_text("本地开发校验自动认证通过")


def test_a_unit_saves_its_data_and_is_verified_automatically(app, page: Page):
    _unit()
    login(app, page, "unit_one", PASSWORD, tab="法人登录")
    page.goto("/center/profile/edit")
    page.locator("#legal_rep_name").fill("王五")
    page.get_by_role("button", name="保存").click()
    expect(page.locator("p.status")).to_have_attribute("data-status", "verified_auto")


@pytest.mark.parametrize("kind", ["natural", "legal"])
def test_the_manual_path_upload_review_and_read_only(app, page: Page, tmp_path, staff_member, kind):
    services().verifier = Mismatch()
    account = _person(document_number="11010519491231002X") if kind == "natural" else _unit()
    login(app, page, account.login_name, PASSWORD, tab="自然人登录" if kind == "natural" else "法人登录")
    page.goto("/center/profile")
    page.locator("a[data-link=upload]").click()
    inputs = ("id_front", "id_back") if kind == "natural" else ("business_licence", "authorisation_letter")
    for name in inputs:
        page.locator(f"input[name={name}]").set_input_files(_png(tmp_path, f"{name}.jpg"))
    screenshot(page, f"verification-upload-{kind}.png")
    page.locator("button[name=submit]").click()
    expect(page.locator("p.status")).to_have_attribute("data-status", "pending")
    case = db.session.execute(db.select(cases.ReviewCase).filter_by(case_type="verification")).scalar_one()
    staff = staff_member("reviewer")
    with unit_of_work.unit():  # as the console's request: committed, then its SMS goes out
        cases.claim(case, staff)
        cases.approve(case, staff)
    page.goto("/center/profile")
    expect(page.locator("p.status")).to_have_attribute("data-status", "verified_manual")
    expect(page.locator("p.status")).to_contain_text("已审核认证")
    screenshot(page, f"profile-verified-{kind}.png")
    page.goto("/center/profile/documents")
    expect(page.locator("section[data-read-only='1']")).to_be_visible()
    expect(page.locator("input[type=file]")).to_have_count(0)
