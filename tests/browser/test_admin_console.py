"""The staff console in a browser: a super administrator enrols (QR code, secret, recovery
codes), signs in with password and TOTP (a wrong code and a replayed code refused), creates a
reviewer; the reviewer enrols, sees the review queue but nothing of business systems or staff,
and decides a registration case."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pyotp
import pytest
from playwright.sync_api import Page, expect

from idp.admin import staff as staff_service
from idp.extensions import db
from idp.models.accounts import ACTIVE, Account
from tests.browser.conftest import DESKTOP, captcha_answer, screenshot
from tests.conftest import make_account

pytestmark = pytest.mark.browser

PASSWORD = "Console-pass-2026"


@pytest.fixture
def settings(settings):
    settings["REGISTRATION_REVIEW"] = True
    return settings


def code_at(clock, secret: str, offset_steps: int = 0) -> str:
    """What the authenticator app shows now: the live app runs on the test's own clock."""
    totp = pyotp.TOTP(secret)
    return totp.generate_otp(totp.timecode(datetime.fromtimestamp(clock.time(), tz=timezone.utc)) + offset_steps)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def enrol(page: Page, clock, path: str, shot: str | None = None) -> list[str]:
    """Open the enrolment link, read the secret off the page, finish enrolment; the recovery codes."""
    page.goto(path)
    qr = page.locator("img.qr")
    expect(qr).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=qr.element_handle())
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    if shot:
        screenshot(page, shot)
    page.locator("#password").fill(PASSWORD)
    page.locator("#password_confirm").fill(PASSWORD)
    page.locator("#code").fill(code_at(clock, secret))
    page.locator("main form button[type=submit]").click()
    codes = page.locator("ul.recovery-codes li code")
    expect(codes).to_have_count(10)
    clock.advance(30)  # the enrolment code's time step is spent
    return codes.all_inner_texts()


def password_step(app, page: Page, login: str) -> None:
    page.goto("/admin/login")
    page.locator("#login").fill(login)
    page.locator("#password").fill(PASSWORD)
    page.locator("#captcha").fill(captcha_answer(app, page, "staff"))
    page.locator("main form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/admin/login/code"))


def code_step(page: Page, code: str) -> None:
    page.locator("#code").fill(code)
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()


def refused_with(page: Page, reason: str) -> None:
    expect(page.locator(f"[role=alert][data-reason='{reason}']")).to_be_visible()


def test_a_superadmin_enrols_signs_in_with_totp_and_a_reviewer_sees_only_the_review_queue(
        app, clock, browser, context, page: Page, live_server):
    staff, token = staff_service.create("wang_admin", "superadmin", "王管理")
    db.session.commit()  # the service only flushes
    secret = staff.totp_secret
    codes = enrol(page, clock, f"/admin/enrol/{token}", shot="admin-enrol.png")
    assert len(set(codes)) == 10 and all(re.fullmatch(r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}", c) for c in codes)
    page.goto(f"/admin/enrol/{token}")
    expect(page.locator("[data-reason='enrolment_link_invalid']")).to_be_visible()  # the link worked once

    # Password, then a wrong code: refused, still not signed in.
    password_step(app, page, "wang_admin")
    code = code_at(clock, secret)
    code_step(page, wrong(code))
    refused_with(page, "totp_wrong")
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login\?"))

    # The right code opens the dashboard.
    password_step(app, page, "wang_admin")
    code_step(page, code)
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("[data-stat='pending_cases']")).to_be_visible()
    expect(page.locator("nav.admin-nav a[href='/admin/staff/']")).to_be_visible()
    screenshot(page, "admin-dashboard.png")

    # The same code, observed and replayed in another browser within its window: refused.
    intruder_context = browser.new_context(base_url=live_server, locale="zh-CN", viewport=DESKTOP)
    try:
        intruder = intruder_context.new_page()
        password_step(app, intruder, "wang_admin")
        code_step(intruder, code)
        refused_with(intruder, "totp_wrong")
        intruder.goto("/admin/")
        expect(intruder).to_have_url(re.compile(r"/admin/login\?"))
    finally:
        intruder_context.close()

    # The super administrator creates a reviewer; the link is shown once.
    page.goto("/admin/staff/")
    page.locator("#login").fill("li_reviewer")
    page.locator("#name").fill("李审核")
    page.locator("#role").select_option("reviewer")
    page.locator("form.new-staff-form button[type=submit]").click()
    link = page.locator("#enrolment-url").inner_text()
    assert link.startswith(f"{live_server}/admin/enrol/")
    page.goto("/admin/staff/")
    expect(page.locator("tr[data-staff='li_reviewer']")).to_have_attribute("data-enrolment", "waiting")

    # Two registrations wait for review.
    natural = make_account(login_name="li_si_2026", document_type="resident_id", identity_region="mainland",
                           document_number="11010519491231002X")
    make_account("legal", login_name="fz_unit")

    # The reviewer enrols on their own browser and signs in.
    reviewer_context = browser.new_context(base_url=live_server, locale="zh-CN", viewport=DESKTOP)
    try:
        reviewer = reviewer_context.new_page()
        enrol(reviewer, clock, link)
        reviewer_secret = staff_service.find("li_reviewer").totp_secret
        password_step(app, reviewer, "li_reviewer")
        code_step(reviewer, code_at(clock, reviewer_secret))
        expect(reviewer).to_have_url(re.compile(r"/admin/$"))

        nav = reviewer.locator("nav.admin-nav")
        expect(nav.locator("a[href='/admin/cases/']")).to_be_visible()
        expect(nav.locator("a[href^='/admin/clients']")).to_have_count(0)
        expect(nav.locator("a[href^='/admin/staff']")).to_have_count(0)
        expect(nav).not_to_contain_text("业务系统")
        expect(nav).not_to_contain_text("Business systems")
        forbidden = "/admin/clients/" if "admin_clients.index" in app.view_functions else "/admin/staff/"
        assert reviewer.goto(forbidden).status == 403
        assert reviewer.goto("/admin/staff/").status == 403

        reviewer.goto("/admin/cases/")
        rows = reviewer.locator("table.case-list tbody tr[data-case]")
        expect(rows).to_have_count(2)
        expect(reviewer.locator("[data-count='pending'] .stat-value")).to_have_text("2")
        screenshot(reviewer, "admin-cases.png")

        # Claim the natural person's case, see the data masked, and approve it.
        reviewer.locator("table.case-list a", has_text="#").first.click()
        expect(reviewer.locator("table.case-summary")).to_have_attribute("data-claim", "free")
        expect(reviewer.locator("tr[data-field='document_number'] td")).to_have_text("110105********002X")
        reviewer.locator("form.claim-form button").click()
        expect(reviewer.locator("table.case-summary")).to_have_attribute("data-claim", "mine")
        reviewer.locator("form.decision-form button[value=reject]").click()
        refused_with(reviewer, "reason_required")
        reviewer.locator("#reason").fill("身份证件信息核对无误")
        reviewer.locator("form.decision-form button[value=approve]").click()
        expect(reviewer.locator("table.case-summary")).to_have_attribute("data-state", "approved")
        expect(reviewer.locator(".case-reason")).to_have_text("身份证件信息核对无误")
    finally:
        reviewer_context.close()
    db.session.expire_all()
    assert db.session.get(Account, natural.id).status == ACTIVE
