"""Staff accounts: enrolment link from the CLI, TOTP mandatory, recovery codes, lockout."""

from __future__ import annotations

import re

from idp.admin import staff as staff_service
from idp.extensions import db, services
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


# --- the sign-in is throttled like the citizens' and tells nothing about which names exist ------


def _notice(response) -> str:
    match = re.search(r'<div class="notice error"[^>]*>(.*?)</div>', response.get_data(as_text=True), re.S)
    return match.group(1).strip() if match else ""


def _failures(app, login: str) -> list:
    """Five wrong passwords for ``login``, each from a fresh browser."""
    return [password_step(app, app.test_client(), login, "Wrong-pass-1") for _ in range(5)]


def test_the_staff_sign_in_needs_the_captcha_before_the_password_is_checked(app, client, clock):
    staff = enrol(app, clock, "wang_admin", "superadmin")
    for answer in ("", "WRONG1"):
        response = password_step(app, client, staff.login, captcha=answer)  # the right password
        assert response.status_code == 400
        assert 'data-reason="captcha_wrong"' in response.get_data(as_text=True)
        assert "captcha-error" in response.get_data(as_text=True)
    assert "staff_pending" not in session_data(app, client)
    # The password was never checked: no failure counted against anyone.
    assert [e.details["purpose"] for e in db.session.query(AuditEvent).filter_by(event="captcha_failed")] == [
        "staff", "staff"]
    assert db.session.query(AuditEvent).filter_by(event="staff_login_failed").count() == 0
    assert password_step(app, client, staff.login).status_code == 302


def test_a_staff_sign_in_flood_from_one_address_is_throttled_even_for_the_right_password(app, clock):
    staff = enrol(app, clock, "wang_admin", "superadmin")
    limit = app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"]
    for n in range(limit):  # guesses spread over many names, so that no single lock stops them
        clock.advance(3)  # under the captcha images' own per-minute cap
        assert password_step(app, app.test_client(), f"guess_{n}", "Wrong-pass-1").status_code == 401
    response = password_step(app, app.test_client(), staff.login)
    assert response.status_code == 429
    assert 'data-reason="address_throttled"' in response.get_data(as_text=True)
    # Another address is not affected.
    other = app.test_client()
    address = {"REMOTE_ADDR": "10.9.8.7"}
    page = other.get("/admin/login", environ_base=address).get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    other.get("/captcha/staff.png", environ_base=address)
    from tests.conftest import session_data as data_of
    answer = services().captcha.peek(data_of(app, other)["captcha_staff"])
    ok = other.post("/admin/login", data={"csrf_token": token, "login": staff.login, "password": STAFF_PASSWORD,
                                          "captcha": answer}, environ_base=address)
    assert ok.status_code == 302


def test_citizens_and_staff_failures_from_one_address_count_together(app, clock):
    from tests.conftest import login

    staff = enrol(app, clock, "wang_admin", "superadmin")
    limit = app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"]
    for n in range(limit):
        clock.advance(3)  # under the captcha images' own per-minute cap
        login(app, app.test_client(), f"citizen_guess_{n}", "Wrong-pass-1")
    assert password_step(app, app.test_client(), staff.login).status_code == 429


def test_an_unknown_staff_name_is_answered_exactly_like_a_wrong_password_for_a_known_one(app, clock):
    enrol(app, clock, "wang_admin", "superadmin")
    known, unknown = _failures(app, "wang_admin"), _failures(app, "no_such_staff")
    assert [r.status_code for r in known] == [r.status_code for r in unknown] == [401] * 5
    reasons = [re.search(r'data-reason="([^"]+)"', r.get_data(as_text=True)).group(1) for r in unknown]
    assert reasons == ["invalid_credentials"] * 4 + ["account_locked"]
    assert [_notice(r) for r in known] == [_notice(r) for r in unknown]
    events = db.session.query(AuditEvent).filter_by(event="staff_login_failed").all()
    assert len(events) == 10 and {e.details["reason"] for e in events} == {"invalid_credentials"}


def test_a_disabled_staff_member_is_answered_like_a_wrong_password(app, clock):
    staff = enrol(app, clock, "wang_admin", "superadmin")
    enrol(app, clock, "li_admin", "superadmin")
    staff.disabled = True
    db.session.commit()
    right, wrong = password_step(app, app.test_client(), "wang_admin"), password_step(
        app, app.test_client(), "li_admin", "Wrong-pass-1")
    assert right.status_code == wrong.status_code == 401
    assert _notice(right) == _notice(wrong)


def test_failures_on_a_staff_name_nobody_holds_never_lock_the_member_later_created_under_it(app, clock):
    _failures(app, "new_admin")
    staff = enrol(app, clock, "new_admin", "superadmin")
    assert password_step(app, app.test_client(), staff.login).status_code == 302
