"""The pages of delegation (/account/delegations: 用户授权管理 for units, 法人(单位)授权办理情况 for
persons), the SMS to the delegate, and `idp delegations grant|revoke|list`."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from idp import jobs
from idp.cli import main as idp_cli
from idp.delegations import service
from idp.extensions import db, services
from idp.models.delegations import Delegation
from tests.conftest import PASSWORD, audit_events, make_account, reason_of
from tests.oidc.conftest import csrf_from, form_action, html


@pytest.fixture
def verified_unit(app):
    unit = make_account("legal", "fz_unit", org_kind="enterprise", name="李四", phone="13900139000")
    unit.verification_status = "verified_manual"
    db.session.commit()
    return unit


@pytest.fixture
def system(make_client):
    return make_client(name="项目申报", trusted=True)


def sign_in_as(rp, login_name, account_type):
    rp.login(login_name=login_name, password=PASSWORD, account_type=account_type)


def grant_on_page(rp, **fields):
    page = html(rp.get("/account/delegations"))
    data = {"csrf_token": csrf_from(page), "login_name": "zhang_san", "name": "张三", "role": "", **fields}
    return rp.browser.post(form_action(page, 'name="grant"'), data=data)


def delegations():
    db.session.expire_all()
    return list(db.session.execute(db.select(Delegation)).scalars())


def sms_sent(template):
    return [m for m in services().sms.messages() if m["template"] == template]


def test_a_unit_authorises_a_person_who_is_told_by_sms_and_accepts(rp, new_browser, verified_unit, person, system):
    sign_in_as(rp, "fz_unit", "legal")
    response = grant_on_page(rp, client_ids=[system[0]], ends=(service.today() + timedelta(days=30)).isoformat())
    assert response.status_code == 302
    [delegation] = delegations()
    assert delegation.status == "pending" and delegation.client_ids == [system[0]] and delegation.role == "经办人"
    assert [m["to"] for m in sms_sent("delegation_granted")] == [person.phone]
    listing = html(rp.get("/account/delegations"))
    assert f'data-delegation="{delegation.id}"' in listing and 'data-state="pending"' in listing
    browser = new_browser()
    sign_in_as(browser, "zhang_san", "natural")
    mine = html(browser.get("/account/delegations"))
    assert verified_unit.org_name in mine
    accepted = browser.browser.post(form_action(mine, 'name="accept"'), data={"csrf_token": csrf_from(mine)})
    assert accepted.status_code == 302
    assert delegations()[0].status == "accepted"
    mine = html(browser.get("/account/delegations"))
    declined = browser.browser.post(form_action(mine, 'name="decline"'), data={"csrf_token": csrf_from(mine)})
    assert declined.status_code == 302 and delegations()[0].status == "declined"
    assert [e.event for e in audit_events() if e.event.startswith("delegation_")] == [
        "delegation_granted", "delegation_accepted", "delegation_declined"]


@pytest.mark.parametrize("fields, reason", [
    ({"login_name": "nobody_here"}, "person_not_found"),
    ({"name": "张四"}, "person_not_found"),
    ({"login_name": "fz_unit"}, "person_not_found"),
    ({"client_ids": ["not-a-system"]}, "client_not_delegable"),
    ({}, "no_client"),
    ({"all_clients": "y", "starts": "2020-01-01"}, "starts_in_the_past"),
    ({"all_clients": "y", "ends": "2020-01-01"}, "ends_in_the_past"),
    ({"all_clients": "y", "starts": "2099-02-01", "ends": "2099-01-01"}, "dates_reversed"),
])
def test_a_refused_authorisation_says_why_and_saves_nothing(rp, verified_unit, person, system, fields, reason):
    sign_in_as(rp, "fz_unit", "legal")
    response = grant_on_page(rp, **fields)
    assert response.status_code == 400 and reason_of(response) == reason
    page = html(response)
    assert "张三" not in page.split("</table>")[0] or reason != "person_not_found"
    assert delegations() == []
    assert sms_sent("delegation_granted") == []


def test_an_unknown_person_page_never_shows_a_name_the_unit_did_not_type(rp, verified_unit, person, system):
    sign_in_as(rp, "fz_unit", "legal")
    response = grant_on_page(rp, name="王五", client_ids=[system[0]])
    assert reason_of(response) == "person_not_found"
    assert "张三" not in html(response)


def test_a_unit_edits_then_revokes_and_the_person_is_told(rp, verified_unit, person, system, make_client):
    other, _ = make_client(name="成果登记", trusted=True)
    sign_in_as(rp, "fz_unit", "legal")
    grant_on_page(rp, client_ids=[system[0]])
    again = grant_on_page(rp, client_ids=[other], role="财务")  # the same person again: an edit
    assert again.status_code == 302
    [delegation] = delegations()
    assert delegation.client_ids == [system[0], other] and delegation.role == "财务"
    edit_page = html(rp.get(f"/account/delegations/{delegation.id}/edit"))
    edited = rp.browser.post(form_action(edit_page, 'name="save"'), data={
        "csrf_token": csrf_from(edit_page), "client_ids": [other], "role": "财务",
        "starts": service.first_day(delegation).isoformat(), "ends": ""})
    assert edited.status_code == 302 and delegations()[0].client_ids == [other]
    reversed_ = rp.browser.post(form_action(edit_page, 'name="save"'), data={
        "csrf_token": csrf_from(edit_page), "client_ids": [other], "starts": "2099-02-01", "ends": "2099-01-01"})
    assert reversed_.status_code == 400 and reason_of(reversed_) == "dates_reversed"
    assert delegations()[0].ends_at is None  # nothing changed
    listing = html(rp.get("/account/delegations"))
    revoked = rp.browser.post(form_action(listing, 'name="revoke"'), data={"csrf_token": csrf_from(listing)})
    assert revoked.status_code == 302 and delegations()[0].status == "revoked"
    assert [m["to"] for m in sms_sent("delegation_revoked")] == [person.phone]


def test_another_unit_cannot_touch_an_authorisation(rp, verified_unit, person, system):
    delegation, _ = service.grant(verified_unit, person, service.Terms((system[0],)))
    db.session.commit()
    other = make_account("legal", "fz_unit2", uscc="91350100M000101Y28", org_name="另一单位", name="王五")
    other.verification_status = "verified_manual"
    db.session.commit()
    sign_in_as(rp, "fz_unit2", "legal")
    page = html(rp.get("/account/delegations"))
    response = rp.browser.post(f"/account/delegations/{delegation.id}/revoke", data={"csrf_token": csrf_from(page)})
    assert response.status_code == 404
    assert rp.get(f"/account/delegations/{delegation.id}/edit").status_code == 404
    assert delegations()[0].status == "pending"


def test_an_unverified_unit_is_told_to_verify_first(rp, person, system):
    make_account("legal", "fz_unit", org_kind="enterprise")
    sign_in_as(rp, "fz_unit", "legal")
    page = html(rp.get("/account/delegations"))
    assert 'data-reason="unit_not_verified"' in page and 'name="grant"' not in page


def run_cli(app, *args):
    result = app.test_cli_runner().invoke(idp_cli, list(args))
    return result


def test_the_cli_grants_lists_and_revokes(app, verified_unit, person, system):
    result = run_cli(app, "delegations", "grant", "--unit", "fz_unit", "--person", "zhang_san",
                     "--client", system[0], "--until", (service.today() + timedelta(days=3)).isoformat(), "--json")
    assert result.exit_code == 0, result.output
    delegation_id = json.loads(result.output)["delegation_id"]
    assert delegations()[0].status == "accepted"  # an operator records a signed paper authorisation
    listed = json.loads(run_cli(app, "delegations", "list", "--unit", "fz_unit", "--json").output)
    assert [d["delegation_id"] for d in listed] == [delegation_id] and listed[0]["clients"] == [system[0]]
    by_person = json.loads(run_cli(app, "delegations", "list", "--person", "zhang_san", "--json").output)
    assert [d["delegation_id"] for d in by_person] == [delegation_id]
    assert run_cli(app, "delegations", "revoke", delegation_id).exit_code == 0
    assert delegations()[0].status == "revoked"


def test_the_cli_refuses_an_unverified_unit(app, person, system):
    make_account("legal", "fz_unit", org_kind="enterprise")
    result = run_cli(app, "delegations", "grant", "--unit", "fz_unit", "--person", "zhang_san", "--json")
    assert result.exit_code != 0 and "unit_not_verified" in result.output
    assert delegations() == []


def test_granting_and_revoking_in_a_loop_cannot_flood_the_persons_phone(verified_unit, person, system):
    for _ in range(8):
        delegation, _ = service.grant(verified_unit, person, service.Terms((system[0],)))
        service.revoke(delegation, unit=verified_unit)
        db.session.commit()
    jobs.run_due()  # outside a unit of work (this bare context) the worker sends the notices
    assert len(sms_sent("delegation_granted")) + len(sms_sent("delegation_revoked")) == service.NOTICES_PER_PHONE.maximum


def test_the_pages_refuse_a_post_without_its_csrf_token(rp, verified_unit, person, system):
    sign_in_as(rp, "fz_unit", "legal")
    response = rp.browser.post("/account/delegations", data={"login_name": "zhang_san", "name": "张三",
                                                             "client_ids": [system[0]]})
    assert response.status_code == 400
    assert delegations() == []
