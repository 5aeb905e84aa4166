"""Staff management in the console: super administrators create staff (enrolment link shown
once), reset a lost authenticator, disable and enable; nobody else may; CSRF on every form."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from idp.admin import staff as staff_service
from idp.extensions import db
from idp.models.audit import AuditEvent
from idp.models.staff import StaffUser
from tests.admin.conftest import STAFF_PASSWORD, current_code, password_step, sign_in
from tests.conftest import csrf_token, reason_of


def post(client, path: str, **data):
    return client.post(path, data={"csrf_token": csrf_token(client, "/admin/"), **data})


def create(client, login: str = "li_reviewer", role: str = "reviewer", name: str = "李审核"):
    return post(client, "/admin/staff/", login=login, role=role, name=name)


def enrolment_path(response) -> str:
    match = re.search(r'<code class="enrolment-url" id="enrolment-url">([^<]+)</code>', response.get_data(as_text=True))
    assert match, "no enrolment link on the page"
    return urlsplit(match.group(1)).path


def find(login: str) -> StaffUser | None:
    db.session.expire_all()
    return db.session.execute(select(StaffUser).filter_by(login=login)).scalar_one_or_none()


def enrol_through_the_page(app, path: str, login: str) -> list[str]:
    browser = app.test_client()
    page = browser.get(path)
    assert page.status_code == 200
    secret = re.search(r'class="totp-secret"[^>]*>([A-Z2-7 ]+)<', page.get_data(as_text=True)).group(1)
    staff = find(login)
    assert secret.replace(" ", "") == staff.totp_secret
    response = browser.post(path, data={
        "csrf_token": csrf_token(browser, path), "password": STAFF_PASSWORD,
        "password_confirm": STAFF_PASSWORD, "code": current_code(app, staff)})
    assert response.status_code == 200
    return re.findall(r"<li><code>([0-9a-f-]+)</code></li>", response.get_data(as_text=True))


def staff_events(action: str) -> list[AuditEvent]:
    events = db.session.execute(select(AuditEvent).filter_by(event="staff_action")
                                .order_by(AuditEvent.id)).scalars()
    return [e for e in events if (e.details or {}).get("action") == action]


def can_sign_in(app, clock, staff) -> bool:
    c = app.test_client()
    response = password_step(app, c, staff.login)
    return response.status_code == 302


# --- creating staff -----------------------------------------------------------------------


def test_a_superadmin_creates_a_reviewer_whose_enrolment_link_works_once(app, clock, console):
    admin = console("superadmin")
    response = create(admin)
    assert response.status_code == 200
    path = enrolment_path(response)
    reviewer = find("li_reviewer")
    assert reviewer.role == "reviewer" and reviewer.name == "李审核" and reviewer.created_by == "superadmin_1"
    assert not reviewer.totp_enabled

    codes = enrol_through_the_page(app, path, "li_reviewer")
    assert len(codes) == 10
    assert app.test_client().get(path).status_code == 410
    clock.advance(30)
    c = app.test_client()
    sign_in(app, c, clock, find("li_reviewer"))
    assert c.get("/admin/cases/").status_code == 200
    assert c.get("/admin/staff/").status_code == 403


def test_the_enrolment_link_is_shown_only_on_the_page_after_creation(app, console):
    admin = console("superadmin")
    path = enrolment_path(create(admin))
    token = path.rsplit("/", 1)[1]
    listing = admin.get("/admin/staff/").get_data(as_text=True)
    assert token not in listing and "li_reviewer" in listing
    assert find("li_reviewer").enrolment_token_hash != token  # only its hash is stored


@pytest.mark.parametrize(("login", "reason"), [
    ("superadmin_1", "login_taken"), ("SUPERADMIN_1", "login_taken"), ("li reviewer", "invalid_login"),
    ("<script>", "invalid_login"),
])
def test_a_taken_or_malformed_login_name_is_refused(app, console, login, reason):
    admin = console("superadmin")
    response = create(admin, login=login)
    assert response.status_code == 400 and reason_of(response) == reason
    assert "<script>" not in response.get_data(as_text=True)
    assert len(db.session.execute(select(StaffUser)).scalars().all()) == 1


def test_an_unknown_role_is_refused(app, console):
    response = create(console("superadmin"), role="emperor")
    assert response.status_code == 400
    assert find("li_reviewer") is None


def test_every_role_can_be_given(app, console):
    admin = console("superadmin")
    for role in ("superadmin", "client_manager", "reviewer", "support"):
        assert create(admin, login=f"new_{role}", role=role).status_code == 200
        assert find(f"new_{role}").role == role


# --- the staff list ----------------------------------------------------------------------


def test_the_staff_list_shows_role_enrolment_status_and_last_sign_in(app, console, staff_member):
    admin = console("superadmin")
    staff_member("reviewer")
    create(admin, login="not_yet")
    page = admin.get("/admin/staff/").get_data(as_text=True)
    assert re.search(r'<tr data-staff="reviewer_1" data-enrolment="enrolled" data-disabled="0">', page)
    assert re.search(r'<tr data-staff="not_yet" data-enrolment="waiting" data-disabled="0">', page)
    row = re.search(r'<tr data-staff="superadmin_1".*?</tr>', page, re.DOTALL).group(0)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", row)  # the last sign-in
    assert "<form" not in row  # no actions on yourself


def test_an_expired_enrolment_link_shows_in_the_list(app, clock, console):
    admin = console("superadmin")
    create(admin, login="slow_one")
    clock.advance(app.config["STAFF_ENROLMENT_TTL"] + 1)
    admin = console("superadmin")  # the first session went idle
    page = admin.get("/admin/staff/").get_data(as_text=True)
    assert 'data-staff="slow_one" data-enrolment="link_expired"' in page


# --- reset, disable, enable ----------------------------------------------------------------


def test_a_new_enrolment_link_voids_the_old_authenticator_and_lets_the_member_enrol_again(
        app, clock, console, staff_member):
    admin = console("superadmin")
    reviewer = staff_member("reviewer")
    old_secret = reviewer.totp_secret
    response = post(admin, f"/admin/staff/{reviewer.id}/reset")
    assert response.status_code == 200
    path = enrolment_path(response)
    reviewer = find("reviewer_1")
    assert not reviewer.totp_enabled and reviewer.password_hash is None and reviewer.totp_secret != old_secret
    assert not can_sign_in(app, clock, reviewer)

    enrol_through_the_page(app, path, "reviewer_1")
    clock.advance(30)
    sign_in(app, app.test_client(), clock, find("reviewer_1"))
    assert [e.subject for e in staff_events("enrolment_reset")] == ["reviewer_1"]


def test_a_disabled_member_loses_their_session_and_cannot_sign_in_until_enabled(
        app, clock, console, staff_member):
    admin = console("superadmin")
    reviewer_console = console("reviewer")
    reviewer = staff_member("reviewer")
    assert reviewer_console.get("/admin/").status_code == 200

    assert post(admin, f"/admin/staff/{reviewer.id}/disable").status_code == 302
    assert find("reviewer_1").disabled
    response = reviewer_console.get("/admin/")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
    assert not can_sign_in(app, clock, reviewer)

    assert post(admin, f"/admin/staff/{reviewer.id}/enable").status_code == 302
    assert not find("reviewer_1").disabled
    sign_in(app, app.test_client(), clock, find("reviewer_1"))
    assert [e.details["action"] for e in staff_events("staff_disabled") + staff_events("staff_enabled")] == [
        "staff_disabled", "staff_enabled"]


def test_a_superadmin_cannot_disable_or_reset_themselves(app, console, staff_member):
    admin = console("superadmin")
    me = staff_member("superadmin")
    response = post(admin, f"/admin/staff/{me.id}/disable")
    assert response.status_code == 409 and reason_of(response) == "cannot_disable_self"
    response = post(admin, f"/admin/staff/{me.id}/reset")
    assert response.status_code == 409 and reason_of(response) == "cannot_reset_self"
    me = find("superadmin_1")
    assert not me.disabled and me.totp_enabled
    assert admin.get("/admin/staff/").status_code == 200


def test_an_unknown_staff_member_is_not_found(app, console):
    admin = console("superadmin")
    for action in ("reset", "disable", "enable"):
        assert post(admin, f"/admin/staff/999999/{action}").status_code == 404


# --- who may ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["client_manager", "reviewer", "support"])
def test_only_a_superadmin_may_manage_staff(app, console, staff_member, role):
    c = console(role)
    target = staff_member("superadmin")
    assert c.get("/admin/staff/").status_code == 403
    assert 'href="/admin/staff/"' not in c.get("/admin/").get_data(as_text=True)
    assert create(c, login="intruder").status_code == 403
    for action in ("reset", "disable", "enable"):
        assert post(c, f"/admin/staff/{target.id}/{action}").status_code == 403
    assert find("intruder") is None
    target = find("superadmin_1")
    assert not target.disabled and target.totp_enabled


def test_the_staff_pages_need_a_signed_in_staff_member(app, client):
    response = client.get("/admin/staff/")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


# --- CSRF on every form ----------------------------------------------------------------------


@pytest.mark.parametrize("action", ["create", "reset", "disable", "enable"])
def test_every_staff_form_refuses_a_request_without_its_csrf_token(app, console, staff_member, action):
    admin = console("superadmin")
    target = staff_member("reviewer")
    if action == "enable":
        target.disabled = True
        db.session.commit()
    before = (target.disabled, target.totp_enabled, target.enrolment_token_hash)
    path = "/admin/staff/" if action == "create" else f"/admin/staff/{target.id}/{action}"
    for data in ({}, {"csrf_token": "forged"}):
        response = admin.post(path, data={"login": "forged_staff", "role": "superadmin", **data})
        assert response.status_code == 400 and reason_of(response) == "csrf_failed"
    target = find("reviewer_1")
    assert (target.disabled, target.totp_enabled, target.enrolment_token_hash) == before
    assert find("forged_staff") is None


def test_staff_created_through_the_service_appear_in_the_console(app, console):
    staff_service.create("from_cli", "support")
    assert 'data-staff="from_cli"' in console("superadmin").get("/admin/staff/").get_data(as_text=True)
