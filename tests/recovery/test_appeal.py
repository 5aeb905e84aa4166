"""申诉找回密码 for persons and units: the pages, the review queue of the console, the temporary
password by SMS and the forced change at sign-in, rejection, one open appeal per account, the
upload rules, and the documents deleted a configurable time after the decision."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import select

from idp import jobs
from idp.extensions import db, services
from idp.models.accounts import Account
from idp.models.cases import APPROVED, PASSWORD_APPEAL, PENDING, REJECTED, ReviewCase
from tests.admin.conftest import console, staff_member  # noqa: F401 (fixtures)
from tests.conftest import PASSWORD, csrf_token, login, make_account, reason_of, solve_captcha
from tests.recovery.conftest import UNIT, last_code, outbox, photo
from tests.recovery.test_reset_by_phone import password_is

DOCUMENT = "11010519491231002X"
NEW_PHONE = "13900139000"


def person():
    return make_account(identity_region="mainland", document_type="resident_id", document_number=DOCUMENT)


def request_code(app, client, phone=NEW_PHONE):
    token = csrf_token(client, "/password/appeal")
    answer = solve_captcha(app, client, "sms")
    response = client.post("/password/appeal/send-code", data={"csrf_token": token, "phone": phone,
                                                               "captcha": answer})
    assert response.status_code == 200, response.get_json()
    return last_code(app)


def files(kinds=("id_front", "id_back"), **override):
    data = {kind: (io.BytesIO(photo()), f"{kind}.jpg") for kind in kinds}
    data.update(override)
    return data


def appeal_person(app, client, code=None, phone=NEW_PHONE, name="张三", number=DOCUMENT, **override):
    code = code or request_code(app, client, phone)
    token = csrf_token(client, "/password/appeal")
    data = {"csrf_token": token, "account_type": "natural", "name": name, "identity_region": "mainland",
            "document_type": "resident_id", "document_number": number, "phone": phone, "sms_code": code,
            **files(), **override}
    return client.post("/password/appeal", data=data, content_type="multipart/form-data")


def find_unit(app, client, org_name=UNIT["org_name"]):
    token = csrf_token(client, "/password/appeal?account_type=legal&restart=1")
    answer = solve_captcha(app, client, "recovery")
    return client.post("/password/appeal", data={"csrf_token": token, "account_type": "legal",
                                                 "org_name": org_name, "captcha": answer})


def appeal_unit(app, client, uscc=UNIT["uscc"], **override):
    code = request_code(app, client)
    token = csrf_token(client, "/password/appeal?account_type=legal")
    data = {"csrf_token": token, "account_type": "legal", "uscc": uscc, "legal_rep_name": "李四",
            "name": "王五", "phone": NEW_PHONE, "sms_code": code,
            **files(("business_licence", "authorisation_letter")), **override}
    return client.post("/password/appeal", data=data, content_type="multipart/form-data")


def the_case() -> ReviewCase:
    db.session.expire_all()
    return db.session.execute(select(ReviewCase).where(ReviewCase.case_type == PASSWORD_APPEAL)
                              .order_by(ReviewCase.id.desc())).scalars().first()


def console_post(staff, path, **data):
    token = csrf_token(staff, "/admin/cases/")
    return staff.post(path, data={"csrf_token": token, **data})


def decide(staff, case, decision, reason=""):
    assert console_post(staff, f"/admin/cases/{case.id}/claim").status_code == 302
    return console_post(staff, f"/admin/cases/{case.id}/decide", decision=decision, reason=reason)


def test_a_person_appeals_and_after_approval_signs_in_with_the_temporary_password(app, client, console):
    account = person()
    page = client.get("/password/appeal").get_data(as_text=True)
    assert "自然人申诉找回密码" in page and "证件需签字上传" in page and "密码将优先以短信形式反馈给用户" in page
    response = appeal_person(app, client)
    assert response.status_code == 302 and response.headers["Location"].endswith("/password/appeal/submitted")
    assert "等待审核" in client.get("/password/appeal/submitted").get_data(as_text=True)
    case = the_case()
    assert case.state == PENDING and case.account_id == account.id
    assert DOCUMENT not in str(case.data) and NEW_PHONE not in str(case.data)  # encrypted at rest

    reviewer = console("reviewer")
    listed = reviewer.get("/admin/cases/?type=password_appeal").get_data(as_text=True)
    assert f"/admin/cases/{case.id}" in listed
    detail = reviewer.get(f"/admin/cases/{case.id}").get_data(as_text=True)
    assert "zhang_san" in detail and DOCUMENT not in detail  # masked until claimed
    assert decide(reviewer, case, "approve").status_code == 302
    assert the_case().state == APPROVED

    messages = outbox(app)
    approval = [m for m in messages if m["template"] == "appeal_approved"][-1]
    assert approval["to"] == NEW_PHONE and approval["params"]["login_name"] == "zhang_san"
    temporary = approval["params"]["password"]
    # the old reserved phone is told, and the new phone becomes the reserved phone
    assert any(m["template"] == "password_recovered" and m["to"] == "13800138000" for m in messages)
    db.session.expire_all()
    assert db.session.get(Account, account.id).phone == NEW_PHONE
    assert not password_is(account.id, PASSWORD)

    fresh = app.test_client()
    signed = login(app, fresh, "zhang_san", temporary)
    assert signed.headers["Location"].endswith("/login/update-password")
    token = csrf_token(fresh, "/login/update-password")
    changed = fresh.post("/login/update-password", data={"csrf_token": token, "password": "Mine-0wn!pass",
                                                          "password_confirm": "Mine-0wn!pass"})
    assert changed.status_code == 302
    assert password_is(account.id, "Mine-0wn!pass")
    assert not db.session.get(Account, account.id).must_change_password


def test_a_unit_finds_its_name_appeals_and_is_approved(app, client, console):
    account = make_account("legal", "fz_unit")
    assert "检索单位名称" in client.get("/password/appeal?account_type=legal&restart=1").get_data(as_text=True)
    assert find_unit(app, client).status_code == 302
    page = client.get("/password/appeal?account_type=legal").get_data(as_text=True)
    assert UNIT["org_name"] in page and "营业执照" in page
    response = appeal_unit(app, client)
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    case = the_case()
    assert case.account_id == account.id
    assert decide(console("reviewer"), case, "approve").status_code == 302
    approval = [m for m in outbox(app) if m["template"] == "appeal_approved"][-1]
    assert login(app, app.test_client(), "fz_unit", approval["params"]["password"], "legal") \
        .headers["Location"].endswith("/login/update-password")


def test_a_rejection_sends_the_reason_and_changes_nothing(app, client, console):
    account = person()
    appeal_person(app, client)
    case = the_case()
    assert decide(console("reviewer"), case, "reject", "证件照片不清晰").status_code == 302
    assert the_case().state == REJECTED
    rejection = outbox(app)[-1]
    assert rejection["template"] == "appeal_rejected" and rejection["to"] == NEW_PHONE
    assert "证件照片不清晰" in rejection["text"]
    assert password_is(account.id, PASSWORD)


def test_an_appeal_that_matches_no_account_is_answered_alike_and_can_only_be_rejected(app, client, console):
    person()
    response = appeal_person(app, client, name="李四")  # the name does not match the document's account
    assert response.status_code == 302
    case = the_case()
    assert case.account_id is None
    reviewer = console("reviewer")
    refused = decide(reviewer, case, "approve")
    assert refused.status_code == 400 and reason_of(refused) == "appeal_without_account"
    assert the_case().state == PENDING


def test_a_second_appeal_while_one_is_open_is_refused(app, client, clock):
    person()
    appeal_person(app, client)
    clock.advance(61)
    again = appeal_person(app, client)
    assert again.status_code == 409 and reason_of(again) == "appeal_open"
    assert "已有申诉正在审核中" in again.get_data(as_text=True)
    assert db.session.execute(select(ReviewCase).where(ReviewCase.case_type == PASSWORD_APPEAL)).all().__len__() == 1


@pytest.mark.parametrize(("upload", "reason"), [
    ((io.BytesIO(b"x" * (1024 * 1024 + 10)), "big.jpg"), "document_too_large"),
    ((io.BytesIO(b"%PDF-1.4 not an image"), "scan.jpg"), "document_not_an_image"),
    ((io.BytesIO(photo()), "scan.gif"), "document_bad_extension"),
])
def test_oversized_or_non_image_uploads_are_refused_and_nothing_is_kept(app, client, upload, reason):
    person()
    response = appeal_person(app, client, id_front=upload)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="id_front-error"' in page
    assert the_case() is None


def test_a_wrong_sms_code_is_refused(app, client):
    person()
    code = request_code(app, client)
    response = appeal_person(app, client, code=f"{(int(code) + 1) % 10**6:06d}")
    assert response.status_code == 400 and 'id="sms_code-error"' in response.get_data(as_text=True)
    assert the_case() is None


def test_documents_are_deleted_the_configured_time_after_the_decision(app, client, console, clock):
    person()
    appeal_person(app, client)
    case = the_case()
    keys = [item["key"] for item in case.data["documents"]]
    reviewer = console("reviewer")
    decide(reviewer, case, "reject", "材料不全")
    storage = services().documents
    assert all(storage.get(key) for key in keys)
    jobs.run_due()
    assert all(storage.get(key) for key in keys)  # not yet
    clock.advance(timedelta(days=app.config["RECOVERY_APPEAL_DOCUMENT_DAYS"], seconds=1).total_seconds())
    jobs.run_due()
    for key in keys:
        with pytest.raises(KeyError):
            storage.get(key)
    assert the_case().data["documents"] == [] and the_case().data["documents_deleted_at"]


def test_unit_name_look_ups_are_throttled_per_address(app, client):
    app.config["RECOVERY_LOOKUPS_PER_ADDRESS"] = 2
    assert find_unit(app, client).status_code == 302
    assert find_unit(app, client).status_code == 302
    refused = find_unit(app, client)
    assert refused.status_code == 429 and reason_of(refused) == "lookup_throttled"
