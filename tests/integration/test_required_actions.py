"""Required actions after the login steps: a password that must be changed is changed before
the sign-in completes, and until then the user is not signed in."""

from __future__ import annotations

from idp.extensions import db
from idp.models.audit import AuditEvent
from tests.conftest import PASSWORD, csrf_token, login, make_account, session_data

NEW_PASSWORD = "Brand-new-9pass"


def _forced(login_name="wang_wu"):
    account = make_account(login_name=login_name)
    account.must_change_password = True
    db.session.commit()
    return account


def _submit(client, password, confirm=None):
    token = csrf_token(client, "/login/update-password")
    return client.post("/login/update-password", data={
        "csrf_token": token, "password": password, "password_confirm": confirm or password,
    })


def test_a_forced_password_change_comes_before_the_sign_in_completes(app, client):
    _forced()
    response = login(app, client, "wang_wu")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login/update-password")
    assert "account_id" not in session_data(app, client)
    assert client.get("/center/profile").status_code == 302


def test_the_new_password_signs_in_clears_the_flag_and_is_audited(app, client):
    account = _forced()
    login(app, client, "wang_wu")
    response = _submit(client, NEW_PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/center/profile")
    assert session_data(app, client)["account_id"] == account.id
    db.session.refresh(account)
    assert account.must_change_password is False
    assert db.session.query(AuditEvent).filter_by(event="password_changed", subject="wang_wu").count() == 1


def test_the_old_password_no_longer_works_after_the_change(app, client):
    _forced()
    login(app, client, "wang_wu")
    _submit(client, NEW_PASSWORD)
    other = app.test_client()
    assert login(app, other, "wang_wu", PASSWORD).status_code == 401
    assert login(app, other, "wang_wu", NEW_PASSWORD).status_code == 302


def test_a_weak_unchanged_or_mismatched_new_password_is_refused_at_its_field(app, client):
    account = _forced()
    login(app, client, "wang_wu")
    before = account.password_hash
    for password, confirm, field in [("short1A", None, "password"), (PASSWORD, None, "password"),
                                     ("wang_wu", None, "password"),
                                     (NEW_PASSWORD, NEW_PASSWORD + "x", "password_confirm")]:
        response = _submit(client, password, confirm)
        assert response.status_code == 400
        assert f'id="{field}-error"' in response.get_data(as_text=True)
    db.session.refresh(account)
    assert account.password_hash == before and account.must_change_password
    assert "account_id" not in session_data(app, client)


def test_the_update_page_without_a_finished_login_step_goes_back_to_login(app, client):
    _forced()
    response = client.get("/login/update-password")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
