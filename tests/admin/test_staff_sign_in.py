"""Staff accounts: enrolment link from the CLI, TOTP mandatory, recovery codes, lockout."""

from __future__ import annotations

import re

from idp.admin import staff as staff_service
from idp.extensions import db
from idp.models.audit import AuditEvent
from tests.admin.conftest import STAFF_PASSWORD, current_code, enrol, password_step, sign_in
from tests.conftest import csrf_token, session_data


def _enrolment_page(client, token):
    return client.get(f"/admin/enrol/{token}")


def test_the_enrolment_page_shows_the_secret_as_text_and_as_a_qr_code(app, client):
    staff, token = staff_service.create("li_reviewer", "reviewer")
    page = _enrolment_page(client, token).get_data(as_text=True)
    secret = re.search(r'class="totp-secret"[^>]*>([A-Z2-7 ]+)<', page).group(1)
    assert secret.replace(" ", "") == staff.totp_secret
    assert 'src="data:image/png;base64,' in page


def test_enrolment_sets_password_and_totp_and_shows_ten_recovery_codes_once(app, client):
    staff, token = staff_service.create("li_reviewer", "reviewer")
    token_field = csrf_token(client, f"/admin/enrol/{token}")
    response = client.post(f"/admin/enrol/{token}", data={
        "csrf_token": token_field, "password": STAFF_PASSWORD, "password_confirm": STAFF_PASSWORD,
        "code": current_code(app, staff)})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    codes = re.findall(r"<li><code>([0-9a-f-]+)</code></li>", page)
    assert len(codes) == 10 and len(set(codes)) == 10
    db.session.refresh(staff)
    assert staff.totp_enabled and staff.password_hash
    assert _enrolment_page(client, token).status_code == 410  # the link worked once


def test_a_wrong_code_at_enrolment_is_refused_and_nothing_is_set(app, client):
    staff, token = staff_service.create("li_reviewer", "reviewer")
    token_field = csrf_token(client, f"/admin/enrol/{token}")
    wrong = f"{(int(current_code(app, staff)) + 1) % 1000000:06d}"
    response = client.post(f"/admin/enrol/{token}", data={
        "csrf_token": token_field, "password": STAFF_PASSWORD, "password_confirm": STAFF_PASSWORD,
        "code": wrong})
    assert response.status_code == 400
    db.session.refresh(staff)
    assert not staff.totp_enabled and staff.password_hash is None


def test_an_expired_enrolment_link_gives_a_clear_page(app, client, clock):
    staff, token = staff_service.create("li_reviewer", "reviewer")
    clock.advance(app.config["STAFF_ENROLMENT_TTL"] + 1)
    response = _enrolment_page(client, token)
    assert response.status_code == 410
    assert 'data-reason="enrolment_link_invalid"' in response.get_data(as_text=True)


def test_sign_in_needs_the_password_and_then_a_totp_code(app, client, clock):
    staff = enrol(app, clock, "wang_admin", "superadmin")
    sign_in(app, client, clock, staff)
    assert session_data(app, client)["staff_id"] == staff.id
    assert client.get("/admin/").status_code == 200


def test_the_password_alone_does_not_open_the_console(app, client, clock):
    staff = enrol(app, clock, "wang_admin", "superadmin")
    password_step(app, client, staff.login)
    assert client.get("/admin/").status_code == 302


def test_a_wrong_totp_code_is_refused(app, client, clock):
    staff = enrol(app, clock, "wang_admin", "superadmin")
    password_step(app, client, staff.login)
    wrong = f"{(int(current_code(app, staff)) + 1) % 1000000:06d}"
    response = client.post("/admin/login/code", data={"csrf_token": csrf_token(client, "/admin/login/code"),
                                                      "code": wrong})
    assert response.status_code == 401
    assert 'data-reason="totp_wrong"' in response.get_data(as_text=True)
    assert "staff_id" not in session_data(app, client)


def test_a_totp_code_cannot_be_replayed_within_its_window(app, client, clock):
    staff = enrol(app, clock, "wang_admin", "superadmin")
    code = current_code(app, staff)
    for attempt in range(2):
        c = app.test_client()
        password_step(app, c, staff.login)
        response = c.post("/admin/login/code", data={"csrf_token": csrf_token(c, "/admin/login/code"),
                                                     "code": code})
        assert response.status_code == (302 if attempt == 0 else 401)


def test_a_recovery_code_works_once(app, client, clock):
    staff, token = staff_service.create("wang_admin", "superadmin")
    codes = staff_service.complete_enrolment(staff, STAFF_PASSWORD, current_code(app, staff))
    for expected in (302, 401):
        c = app.test_client()
        password_step(app, c, staff.login)
        response = c.post("/admin/login/code", data={"csrf_token": csrf_token(c, "/admin/login/code"),
                                                     "code": codes[0]})
        assert response.status_code == expected


def test_five_wrong_passwords_lock_the_staff_account(app, client, clock):
    staff = enrol(app, clock, "wang_admin", "superadmin")
    for _ in range(5):
        response = password_step(app, client, staff.login, "Wrong-pass-1")
    assert 'data-reason="account_locked"' in response.get_data(as_text=True)
    response = password_step(app, client, staff.login)
    assert 'data-reason="account_locked"' in response.get_data(as_text=True)


def test_sign_ins_and_failures_are_audited(app, client, clock):
    staff = enrol(app, clock, "wang_admin", "superadmin")
    password_step(app, client, staff.login, "Wrong-pass-1")
    sign_in(app, client, clock, staff)
    events = [e.event for e in db.session.query(AuditEvent).order_by(AuditEvent.id)]
    assert "staff_login_failed" in events and "staff_login_succeeded" in events and "staff_enrolled" in events


def test_the_console_pages_need_a_signed_in_staff_member(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
