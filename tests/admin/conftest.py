"""Console fixtures: staff members of each role, enrolled, and a signed-in test client."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pyotp
import pytest

from idp.admin import staff as staff_service
from idp.extensions import db, services
from tests.conftest import csrf_token, solve_captcha
from tests.oidc.conftest import relying_party

STAFF_PASSWORD = "Staff-pass-2026"


def current_code(app, staff, offset_steps: int = 0) -> str:
    totp = pyotp.TOTP(staff.totp_secret)
    now = datetime.fromtimestamp(services().clock.time(), tz=timezone.utc)
    return totp.generate_otp(totp.timecode(now) + offset_steps)


def enrol(app, clock, login: str, role: str):
    staff, token = staff_service.create(login, role)
    staff_service.complete_enrolment(staff, STAFF_PASSWORD, current_code(app, staff))
    db.session.commit()  # the services only flush: the test's setup is a unit of its own
    clock.advance(30)  # the enrolment code's step is spent; the next sign-in needs a new one
    return staff


def password_step(app, client, login: str, password: str = STAFF_PASSWORD, captcha: str | None = None):
    """The first page of the console's sign-in, with the captcha solved as a person would
    (``captcha`` overrides the answer)."""
    token = csrf_token(client, "/admin/login")
    if captcha is None:
        captcha = solve_captcha(app, client, "staff") if services().captcha.enabled else ""
    return client.post("/admin/login", data={"csrf_token": token, "login": login, "password": password,
                                             "captcha": captcha})


def sign_in(app, client, clock, staff, password: str = STAFF_PASSWORD):
    response = password_step(app, client, staff.login, password)
    assert response.status_code == 302, response.get_data(as_text=True)
    token = csrf_token(client, "/admin/login/code")
    response = client.post("/admin/login/code", data={"csrf_token": token, "code": current_code(app, staff)})
    assert response.status_code == 302, response.get_data(as_text=True)
    clock.advance(30)
    return response


@pytest.fixture
def staff_member(app, clock):
    """A factory: staff_member("reviewer") → an enrolled reviewer."""
    made = {}

    def make(role: str, login: str | None = None):
        login = login or f"{role}_1"
        if login not in made:
            made[login] = enrol(app, clock, login, role)
        return made[login]

    return make


@pytest.fixture
def console(app, client, clock, staff_member):
    """A factory: console("superadmin") → a test client signed in as that role."""

    def make(role: str):
        staff = staff_member(role)
        c = app.test_client()
        sign_in(app, c, clock, staff)
        return c

    return make


def form_token(page: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match
    return match.group(1)


@pytest.fixture
def rp(app, clock):
    """A browser plus relying party (as in tests/oidc) on its own test client."""
    return relying_party(app, clock)
