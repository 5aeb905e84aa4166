"""The dashboard: today's sign-ins, failures, lockouts, pending cases, active sessions and the
sign-ins per hour of the last day."""

from __future__ import annotations

import re

import pytest

from idp.admin import dashboard
from tests.conftest import login, make_account


@pytest.fixture
def settings(settings):
    settings["CAPTCHA"] = "off"
    return settings


def _stat(page: str, name: str) -> int:
    return int(re.search(rf'data-stat="{name}"><span class="stat-value">(\d+)<', page).group(1))


def test_the_dashboard_counts_todays_security_events(app, console):
    make_account(login_name="zhang_san")
    make_account(login_name="li_si_unit")
    for _ in range(5):
        login(app, app.test_client(), "li_si_unit", "Wrong-pass-1", captcha="")
    login(app, app.test_client(), "zhang_san", captcha="")
    page = console("support").get("/admin/").get_data(as_text=True)
    assert _stat(page, "sign_ins_today") == 1
    assert _stat(page, "failures_today") == 5
    assert _stat(page, "lockouts_today") == 1
    assert _stat(page, "active_sessions") == 1
    assert _stat(page, "pending_cases") == 0


def test_the_hourly_chart_puts_each_sign_in_in_its_hour(app, clock):
    make_account(login_name="zhang_san")
    login(app, app.test_client(), "zhang_san", captcha="")
    clock.advance(2 * 3600)
    login(app, app.test_client(), "zhang_san", captcha="")
    hours = dashboard.sign_ins_per_hour()
    assert len(hours) == 24 and sum(n for _, n in hours) == 2
    assert hours[-1][1] == 1 and hours[-3][1] == 1
    svg = str(dashboard.hourly_chart_svg())
    assert svg.startswith("<svg") and svg.count("<rect") == 24


@pytest.mark.parametrize("role", ["superadmin", "client_manager", "reviewer", "support"])
def test_every_role_sees_the_dashboard(console, role):
    assert console(role).get("/admin/").status_code == 200
