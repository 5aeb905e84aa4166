"""A rejected registration is told why at the login page."""

from __future__ import annotations

import pytest

from idp import cases
from idp.extensions import db
from idp.models.cases import ReviewCase
from tests.conftest import login, make_account


@pytest.fixture
def settings(settings):
    settings["REGISTRATION_REVIEW"] = True
    return settings


def test_a_rejected_applicant_sees_the_reviewers_reason_at_login(app, client, staff_member):
    account = make_account(login_name="applicant")
    case = db.session.execute(db.select(ReviewCase).filter_by(account_id=account.id)).scalar_one()
    reviewer = staff_member("reviewer")
    cases.claim(case, reviewer)
    cases.reject(case, reviewer, "单位名称与营业执照不一致")
    response = login(app, client, "applicant")
    page = response.get_data(as_text=True)
    assert 'data-reason="account_disabled"' in page
    assert "单位名称与营业执照不一致" in page


def test_a_disabled_account_without_a_rejection_gets_the_support_message(app, client, staff_member):
    make_account(login_name="applicant")
    from idp.models.accounts import Account

    account = db.session.execute(db.select(Account).filter_by(login_name="applicant")).scalar_one()
    account.status = "disabled"
    db.session.commit()
    page = login(app, client, "applicant").get_data(as_text=True)
    assert 'data-reason="account_disabled"' in page and "010-88659000" in page
