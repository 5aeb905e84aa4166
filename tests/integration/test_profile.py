"""The user centre (在线办事 → 我的信息): the profile page, 修改个人信息 and 修改法人信息.

The profile shows the login name in full and personal data masked; editing keeps what is left
empty, checks identifiers, refuses a USCC of another unit and writes an audit event that names
the changed fields, never their values.
"""

from __future__ import annotations

import json
import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from markupsafe import escape
from sqlalchemy import text

from idp.accounts.service import find_by_document
from idp.accounts.views import FIELD_MESSAGES
from idp.extensions import db, services
from idp.models.accounts import Account
from idp.models.audit import AuditEvent
from tests.conftest import PASSWORD, csrf_token, form_state, login, make_account, solve_captcha

ID_NUMBER = "11010519491231002X"
OTHER_ID = "440524188001010014"


# --- helpers -------------------------------------------------------------------------------


def profile_values(page: str) -> dict[str, str]:
    """The 我的信息 table as {field: shown value}."""
    rows = re.findall(r'<tr data-field="([a-z_]+)"><th scope="row">.*?</th><td>(.*?)</td></tr>', page, re.S)
    return {field: unescape(value) for field, value in rows}


def reload(account_id: int) -> Account:
    db.session.rollback()
    db.session.expire_all()
    return db.session.get(Account, account_id)


def raw_column(account_id: int, column: str) -> str | None:
    return db.session.execute(text(f"SELECT {column} FROM accounts WHERE id = :id"), {"id": account_id}).scalar()


def natural_account() -> Account:
    return make_account(
        login_name="zhang_san_long_login_name", name="张三", gender="male", ethnicity="汉族",
        identity_region="mainland", document_type="resident_id", document_number=ID_NUMBER,
        phone="13800138000", email="zhangsan@example.com", address="北京市海淀区复兴路乙15号",
        landline="010-62345678",
    )


def legal_account(login_name: str = "fz_unit", uscc: str = "91350100M000100Y43") -> Account:
    return make_account(
        "legal", login_name=login_name, uscc=uscc, org_name="福州示例有限公司", org_kind="enterprise",
        org_region="domestic", name="李四", phone="13900139000", email="lisi@example.com",
        legal_rep_name="王五", legal_rep_document_type="resident_id", legal_rep_document_number=OTHER_ID,
    )


def natural_edit(**changes) -> dict:
    data = {
        "name": "张三丰", "gender": "male", "ethnicity": "回族", "job_title": "工程师",
        "birth_date": "", "email": "sanfeng@example.org", "landline": "0591-87654321",
        "identity_region": "mainland", "document_type": "resident_id", "document_number": "",
        "document_valid_until": "2036-01-01", "address": "",
    }
    data.update(changes)
    return data


def legal_edit(**changes) -> dict:
    data = {
        "org_name": "福州新名称科技有限公司", "org_kind": "social_org", "org_region": "domestic",
        "uscc": "91350100M000100Y43", "address": "福建省福州市鼓楼区五四路1号", "landline": "",
        "name": "赵六", "email": "zhaoliu@example.org", "legal_rep_name": "钱七",
        "legal_rep_document_type": "resident_id", "legal_rep_document_number": ID_NUMBER,
    }
    data.update(changes)
    return data


def post_edit(client, data: dict):
    return client.post("/center/profile/edit", data={**data, "csrf_token": csrf_token(client, "/center/profile/edit")})


def snapshot(account: Account) -> dict:
    return {c.key: getattr(account, c.key) for c in Account.__table__.columns if c.key != "updated_at"}


# --- the profile page ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/center/profile", "/center/profile/edit", "/center"])
def test_the_user_centre_requires_login(app, client, path):
    response = client.get(path)
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert target.path == "/login"
    assert parse_qs(target.query) == {"next": [path]}


def test_after_login_the_user_returns_to_the_page_asked_for(app, client):
    natural_account()
    target = client.get("/center/profile/edit").headers["Location"]
    token = csrf_token(client, target)  # the login page, opened with ?next=…
    response = client.post("/login", data={
        "csrf_token": token, "account_type": "natural", "login_name": "zhang_san_long_login_name",
        "password": PASSWORD, "captcha": solve_captcha(app, client),
    })
    assert response.status_code == 302
    assert response.headers["Location"] == "/center/profile/edit"
    assert client.get("/center/profile/edit").status_code == 200


def test_the_profile_shows_the_login_name_in_full_and_personal_data_masked(app, client):
    natural_account()
    assert login(app, client, "zhang_san_long_login_name").status_code == 302
    response = client.get("/center/profile")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    shown = profile_values(page)
    assert shown["login_name"] == "zhang_san_long_login_name"
    assert shown["name"] == "张三"
    assert shown["document_number"] == "110105********002X"
    assert shown["phone"] == "138****8000"
    assert shown["birth_date"] == "1949-**-**"
    assert shown["email"] == "z***@example.com"
    assert shown["address"].endswith("****") and "复兴路乙15号" not in shown["address"]
    for clear in (ID_NUMBER, "13800138000", "1949-12-31", "zhangsan@example.com", "zhangsan@",
                  "复兴路乙15号", "62345678"):
        assert clear not in page, clear


def test_a_legal_profile_shows_unit_and_representative_with_personal_data_masked(app, client):
    legal_account()
    assert login(app, client, "fz_unit", account_type="legal").status_code == 302
    page = client.get("/center/profile").get_data(as_text=True)
    shown = profile_values(page)
    assert shown["login_name"] == "fz_unit"
    assert shown["uscc"] == "91350100M000100Y43"
    assert shown["org_name"] == "福州示例有限公司"
    assert shown["phone"] == "139****9000"
    assert shown["email"] == "l***@example.com"
    assert shown["legal_rep_document_number"] == "440524********0014"
    for clear in (OTHER_ID, "13900139000", "lisi@example.com"):
        assert clear not in page


def test_the_edit_form_starts_with_personal_identifiers_empty(app, client):
    natural_account()
    login(app, client, "zhang_san_long_login_name")
    page = client.get("/center/profile/edit").get_data(as_text=True)
    state = form_state(page)
    assert state.values["document_number"] == ""
    assert state.values["address"] == ""
    assert state.values["name"] == "张三"
    assert ID_NUMBER not in page
    assert "110105********002X" in page  # shown masked as the current value


# --- 修改个人信息 ------------------------------------------------------------------------------


def test_editing_personal_information_updates_the_fields(app, client):
    account = natural_account()
    account_id = account.id
    login(app, client, "zhang_san_long_login_name")
    response = post_edit(client, natural_edit())
    assert response.status_code == 302, form_state(response.get_data(as_text=True)).error_ids
    assert response.headers["Location"].endswith("/center/profile")

    account = reload(account_id)
    assert account.name == "张三丰"
    assert account.ethnicity == "回族"
    assert account.job_title == "工程师"
    assert account.email == "sanfeng@example.org"
    assert account.landline == "0591-87654321"
    assert account.document_valid_until == "2036-01-01"
    # left empty: kept
    assert account.document_number == ID_NUMBER
    assert account.document_index == services().keyring.index(ID_NUMBER, "document")
    assert account.address == "北京市海淀区复兴路乙15号"
    assert account.birth_date == "1949-12-31"
    # not on the form at all
    assert account.phone == "13800138000"
    raw_email = raw_column(account_id, "email")
    assert raw_email.startswith("v1.") and "sanfeng" not in raw_email

    shown = profile_values(client.get("/center/profile").get_data(as_text=True))
    assert shown["name"] == "张三丰"
    assert shown["email"] == "s***@example.org"


def test_a_new_document_number_replaces_the_stored_one_encrypted_and_indexed(app, client):
    account_id = natural_account().id
    login(app, client, "zhang_san_long_login_name")
    response = post_edit(client, natural_edit(document_number=" 4405 2418 8001 0100 14 "))
    assert response.status_code == 302
    account = reload(account_id)
    assert account.document_number == OTHER_ID
    assert account.document_index == services().keyring.index(OTHER_ID, "document")
    raw = raw_column(account_id, "document_number")
    assert raw.startswith("v1.") and OTHER_ID not in raw


def test_a_document_number_with_a_bad_check_digit_gives_a_field_error_and_changes_nothing(app, client):
    account = natural_account()
    account_id = account.id
    before = snapshot(account)
    login(app, client, "zhang_san_long_login_name")
    data = natural_edit(document_number="110105194912310021")
    response = post_edit(client, data)
    assert response.status_code == 400
    state = form_state(response.get_data(as_text=True))
    assert "document_number-error" in state.error_ids
    for name in ("name", "email", "job_title", "ethnicity", "gender", "landline", "document_valid_until"):
        assert state.values[name] == data[name], name
    after = snapshot(reload(account_id))
    before.pop("last_login_at"), after.pop("last_login_at")
    assert after == before
    assert not db.session.execute(db.select(AuditEvent).filter_by(event="profile_updated")).scalars().all()


def test_a_document_type_not_fitting_the_identity_region_is_refused(app, client):
    account_id = natural_account().id
    login(app, client, "zhang_san_long_login_name")
    response = post_edit(client, natural_edit(identity_region="other", document_type="resident_id",
                                              document_number=OTHER_ID))
    assert response.status_code == 400
    assert "document_type-error" in form_state(response.get_data(as_text=True)).error_ids
    assert reload(account_id).document_number == ID_NUMBER


@pytest.mark.parametrize("field, value", [
    ("landline", "call me maybe"),
    ("birth_date", "31.12.1949"),
    ("address", "北" * 201),
], ids=["landline", "birth date", "address"])
def test_a_bad_value_in_a_field_with_a_masked_current_value_gives_a_field_error(app, client, field, value):
    account = natural_account()
    account_id, before = account.id, snapshot(account)
    login(app, client, "zhang_san_long_login_name")
    data = natural_edit(**{field: value})
    response = post_edit(client, data)
    assert response.status_code == 400
    state = form_state(response.get_data(as_text=True))
    assert f"{field}-error" in state.error_ids
    assert state.values["name"] == data["name"]
    after = snapshot(reload(account_id))
    before.pop("last_login_at"), after.pop("last_login_at")
    assert after == before


def test_a_profile_edit_without_csrf_token_is_refused(app, client):
    account_id = natural_account().id
    login(app, client, "zhang_san_long_login_name")
    response = client.post("/center/profile/edit", data=natural_edit())
    assert response.status_code == 400
    assert 'data-reason="csrf_failed"' in response.get_data(as_text=True)
    assert reload(account_id).name == "张三"


# --- 修改法人信息 ------------------------------------------------------------------------------


def test_editing_legal_information_updates_unit_authorisation_and_representative(app, client):
    account_id = legal_account().id
    login(app, client, "fz_unit", account_type="legal")
    response = post_edit(client, legal_edit())
    assert response.status_code == 302, form_state(response.get_data(as_text=True)).error_ids

    account = reload(account_id)
    assert account.org_name == "福州新名称科技有限公司"
    assert account.org_kind == "social_org"
    assert account.address == "福建省福州市鼓楼区五四路1号"
    assert account.name == "赵六"
    assert account.email == "zhaoliu@example.org"
    assert account.legal_rep_name == "钱七"
    assert account.legal_rep_document_type == "resident_id"
    assert account.legal_rep_document_number == ID_NUMBER
    assert account.legal_rep_document_index == services().keyring.index(ID_NUMBER, "document")
    assert account.phone == "13900139000"
    raw = raw_column(account_id, "legal_rep_document_number")
    assert raw.startswith("v1.") and ID_NUMBER not in raw and "19491231" not in raw
    raw_address = raw_column(account_id, "address")
    assert raw_address.startswith("v1.") and "五四路" not in raw_address


def test_leaving_the_representatives_document_number_empty_keeps_it(app, client):
    account_id = legal_account().id
    login(app, client, "fz_unit", account_type="legal")
    response = post_edit(client, legal_edit(legal_rep_document_number=""))
    assert response.status_code == 302
    assert reload(account_id).legal_rep_document_number == OTHER_ID


def test_a_representatives_document_number_with_a_bad_check_digit_is_refused(app, client):
    account = legal_account()
    account_id, before = account.id, snapshot(account)
    login(app, client, "fz_unit", account_type="legal")
    data = legal_edit(legal_rep_document_number="110105194912310021")
    response = post_edit(client, data)
    assert response.status_code == 400
    state = form_state(response.get_data(as_text=True))
    assert "legal_rep_document_number-error" in state.error_ids
    assert state.values["org_name"] == data["org_name"]
    after = snapshot(reload(account_id))
    before.pop("last_login_at"), after.pop("last_login_at")
    assert after == before


def test_changing_the_uscc_to_one_of_another_unit_gives_a_uscc_error(app, client):
    legal_account("other_unit", uscc="91110000600037341L")
    account = legal_account()
    account_id, before = account.id, snapshot(account)
    login(app, client, "fz_unit", account_type="legal")
    data = legal_edit(uscc="91110000600037341L")
    response = post_edit(client, data)
    assert response.status_code == 400
    state = form_state(response.get_data(as_text=True))
    assert "uscc-error" in state.error_ids
    for name in ("org_name", "name", "email", "legal_rep_name", "org_kind"):
        assert state.values[name] == data[name], name
    after = snapshot(reload(account_id))
    before.pop("last_login_at"), after.pop("last_login_at")
    assert after == before


def test_a_bad_uscc_check_character_gives_a_uscc_error(app, client):
    account_id = legal_account().id
    login(app, client, "fz_unit", account_type="legal")
    response = post_edit(client, legal_edit(uscc="91350100M000100Y4Z"))
    assert response.status_code == 400
    assert "uscc-error" in form_state(response.get_data(as_text=True)).error_ids
    assert reload(account_id).uscc == "91350100M000100Y43"


# --- audit -----------------------------------------------------------------------------------


def test_a_profile_update_is_audited_with_field_names_and_never_values(app, client):
    account_id = natural_account().id
    login(app, client, "zhang_san_long_login_name")
    response = post_edit(client, natural_edit(document_number=OTHER_ID))
    assert response.status_code == 302
    events = db.session.execute(db.select(AuditEvent).filter_by(event="profile_updated")).scalars().all()
    assert len(events) == 1
    event = events[0]
    assert event.outcome == "success"
    assert event.subject == "zhang_san_long_login_name"
    assert set(event.details["fields"]) == {
        "name", "ethnicity", "job_title", "email", "landline", "document_number", "document_valid_until",
        "birth_date",  # follows the new resident ID
    }
    dumped = json.dumps(event.details, ensure_ascii=False)
    for value in ("张三丰", "回族", "工程师", "sanfeng@example.org", "0591-87654321", OTHER_ID, "2036-01-01",
                  ID_NUMBER, "1880-01-01", "1949-12-31"):
        assert value not in dumped
    assert reload(account_id).document_number == OTHER_ID


def test_a_legal_profile_update_is_audited_with_field_names_only(app, client):
    legal_account()
    login(app, client, "fz_unit", account_type="legal")
    assert post_edit(client, legal_edit()).status_code == 302
    [event] = db.session.execute(db.select(AuditEvent).filter_by(event="profile_updated")).scalars().all()
    assert "legal_rep_document_number" in event.details["fields"]
    assert "org_name" in event.details["fields"]
    dumped = json.dumps(event.details, ensure_ascii=False)
    assert ID_NUMBER not in dumped and "福州新名称" not in dumped and "zhaoliu" not in dumped


# --- identity region, document type and number -------------------------------------------------


def test_a_document_type_not_fitting_the_region_is_refused_even_with_the_number_left_empty(app, client):
    account = natural_account()
    account_id, before = account.id, snapshot(account)
    login(app, client, "zhang_san_long_login_name")
    data = natural_edit(identity_region="other", document_type="resident_id", document_number="")
    response = post_edit(client, data)
    assert response.status_code == 400
    assert "document_type-error" in form_state(response.get_data(as_text=True)).error_ids
    after = snapshot(reload(account_id))
    before.pop("last_login_at"), after.pop("last_login_at")
    assert after == before


def test_changing_the_document_type_requires_the_number_again(app, client):
    account = natural_account()
    account_id, before = account.id, snapshot(account)
    login(app, client, "zhang_san_long_login_name")
    data = natural_edit(identity_region="hmt", document_type="passport", document_number="")
    response = post_edit(client, data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "document_number-error" in form_state(page).error_ids
    assert str(escape(FIELD_MESSAGES["document_number_required"])) in page
    after = snapshot(reload(account_id))
    before.pop("last_login_at"), after.pop("last_login_at")
    assert after == before


def test_a_new_document_type_with_its_number_is_saved(app, client):
    account_id = natural_account().id
    login(app, client, "zhang_san_long_login_name")
    response = post_edit(client, natural_edit(identity_region="hmt", document_type="passport",
                                              document_number="E12345678"))
    assert response.status_code == 302, form_state(response.get_data(as_text=True)).error_ids
    account = reload(account_id)
    assert (account.identity_region, account.document_type, account.document_number) == (
        "hmt", "passport", "E12345678")
    assert find_by_document("passport", "E12345678").id == account_id
    assert find_by_document("resident_id", ID_NUMBER) is None


def test_an_account_without_a_document_saves_its_profile_without_one(app, client):
    account_id = make_account(login_name="no_document").id
    login(app, client, "no_document")
    response = post_edit(client, natural_edit(document_number=""))
    assert response.status_code == 302, form_state(response.get_data(as_text=True)).error_ids
    assert reload(account_id).name == "张三丰"


def test_a_document_of_another_account_is_refused_and_nothing_changes(app, client):
    make_account(login_name="other_person", phone="13900139000", identity_region="mainland",
                 document_type="resident_id", document_number=OTHER_ID)
    account = natural_account()
    account_id, before = account.id, snapshot(account)
    login(app, client, "zhang_san_long_login_name")
    data = natural_edit(document_number="4405 2418 8001 0100 14")
    response = post_edit(client, data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    state = form_state(page)
    assert "document_number-error" in state.error_ids
    assert str(escape(FIELD_MESSAGES["document_taken"])) in page
    for name in ("name", "email", "job_title"):
        assert state.values[name] == data[name]
    after = snapshot(reload(account_id))
    before.pop("last_login_at"), after.pop("last_login_at")
    assert after == before
    assert not db.session.execute(db.select(AuditEvent).filter_by(event="profile_updated")).scalars().all()


def test_keeping_ones_own_document_is_not_a_clash(app, client):
    account_id = natural_account().id
    login(app, client, "zhang_san_long_login_name")
    assert post_edit(client, natural_edit(document_number=ID_NUMBER)).status_code == 302
    assert find_by_document("resident_id", ID_NUMBER).id == account_id


def test_a_document_given_up_by_one_account_can_be_taken_by_another(app, client):
    natural_account()
    login(app, client, "zhang_san_long_login_name")
    assert post_edit(client, natural_edit(document_number=OTHER_ID)).status_code == 302
    other = make_account(login_name="other_person", phone="13900139000", identity_region="mainland",
                         document_type="resident_id", document_number=ID_NUMBER)
    assert find_by_document("resident_id", ID_NUMBER).id == other.id


# --- the birth date follows the resident ID ------------------------------------------------------


def test_a_new_resident_id_number_brings_its_birth_date(app, client):
    account_id = natural_account().id
    assert reload(account_id).birth_date == "1949-12-31"
    login(app, client, "zhang_san_long_login_name")
    assert post_edit(client, natural_edit(document_number=OTHER_ID)).status_code == 302
    assert reload(account_id).birth_date == "1880-01-01"
    assert profile_values(client.get("/center/profile").get_data(as_text=True))["birth_date"] == "1880-**-**"


def test_a_resident_id_set_on_an_account_with_a_birth_date_replaces_it(app, client):
    account_id = make_account(login_name="no_document", birth_date="2000-01-01").id
    login(app, client, "no_document")
    assert post_edit(client, natural_edit(document_number=ID_NUMBER)).status_code == 302
    assert reload(account_id).birth_date == "1949-12-31"


def test_a_birth_date_contradicting_the_resident_id_is_refused(app, client):
    account = natural_account()
    account_id, before = account.id, snapshot(account)
    login(app, client, "zhang_san_long_login_name")
    response = post_edit(client, natural_edit(birth_date="1950-01-01"))
    assert response.status_code == 400
    assert "birth_date-error" in form_state(response.get_data(as_text=True)).error_ids
    after = snapshot(reload(account_id))
    before.pop("last_login_at"), after.pop("last_login_at")
    assert after == before


def test_a_birth_date_matching_the_resident_id_is_accepted(app, client):
    account_id = natural_account().id
    login(app, client, "zhang_san_long_login_name")
    assert post_edit(client, natural_edit(birth_date="1880-01-01", document_number=OTHER_ID)).status_code == 302
    assert reload(account_id).birth_date == "1880-01-01"
