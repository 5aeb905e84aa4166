"""Registration (自然人注册 / 单位用户（法人）注册): the whole flow through the pages.

send-code (captcha-gated) → code from the SMS outbox → the registration form → /register/done.
Assertions are on status codes, field names (``<p class="error" id="<field>-error">``), reason
codes and database state — never on translated copy.
"""

from __future__ import annotations

import threading

import pytest
from markupsafe import escape
from sqlalchemy import func, text

from idp.accounts.names import login_name_key
from idp.accounts.views import FIELD_MESSAGES
from idp.extensions import db, services
from idp.models.accounts import Account
from idp.models.cases import ReviewCase
from tests.conftest import (PASSWORD, csrf_token, form_state, login, make_account, outbox_codes,
                            session_data, solve_captcha)

PHONE = "13800138000"
OTHER_PHONE = "13900139000"


@pytest.fixture
def settings(settings, request):
    """Per-test setting overrides through ``@pytest.mark.parametrize("settings", …, indirect=True)``."""
    settings.update(getattr(request, "param", {}))
    return settings


# --- helpers -------------------------------------------------------------------------------


def account_count() -> int:
    db.session.rollback()
    return db.session.execute(db.select(func.count(Account.id))).scalar_one()


def find(login_name: str) -> Account | None:
    db.session.rollback()
    return db.session.execute(
        db.select(Account).filter_by(login_name_key=login_name_key(login_name))
    ).scalar_one_or_none()


def raw_row(login_name: str) -> dict:
    """The row as stored, without the Encrypted type's decryption."""
    row = db.session.execute(
        text("SELECT * FROM accounts WHERE login_name_key = :k"), {"k": login_name_key(login_name)}
    ).mappings().one()
    return dict(row)


def request_code(app, client, phone: str, account_type: str = "natural"):
    """Ask for a registration code the way the page's "Get code" button does."""
    token = csrf_token(client, f"/register/{account_type}")
    answer = solve_captcha(app, client, "sms")
    return client.post("/register/send-code", data={"phone": phone, "captcha": answer, "csrf_token": token})


def fresh_code(app, client, phone: str, account_type: str = "natural") -> str:
    before = len(outbox_codes(app))
    response = request_code(app, client, phone, account_type)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["ok"] is True
    codes = outbox_codes(app)
    assert len(codes) == before + 1
    return codes[-1]


def register_at_once(app, prepared: list) -> list:
    """POST each (client, form data) to /register/natural from its own thread, all released at
    the same moment; the responses in the same order."""
    barrier = threading.Barrier(len(prepared))
    responses: list = [None] * len(prepared)
    errors: list = []

    def attempt(index: int, client, data: dict) -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=10)
                responses[index] = client.post("/register/natural", data=data)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(i, c, d)) for i, (c, d) in enumerate(prepared)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return responses


def natural_data(code: str, **changes) -> dict:
    data = {
        "login_name": "li_si_2026",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
        "name": "李四",
        "identity_region": "mainland",
        "document_type": "resident_id",
        "document_number": "11010519491231002X",
        "phone": PHONE,
        "email": "lisi@example.cn",
        "sms_code": code,
    }
    data.update(changes)
    return data


def legal_data(code: str, **changes) -> dict:
    data = {
        "login_name": "fz_unit_2026",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
        "org_name": "福州示例科技有限公司",
        "org_kind": "enterprise",
        "org_region": "domestic",
        "uscc": "91350100M000100Y43",
        "name": "王五",
        "phone": PHONE,
        "email": "wangwu@example.cn",
        "sms_code": code,
    }
    data.update(changes)
    return data


def post_registration(client, account_type: str, data: dict, with_csrf: bool = True):
    data = dict(data)
    if with_csrf:
        data["csrf_token"] = csrf_token(client, f"/register/{account_type}")
    return client.post(f"/register/{account_type}", data=data)


def register(app, client, account_type: str = "natural", **changes):
    phone = changes.get("phone", PHONE)
    code = fresh_code(app, client, phone, account_type)
    build = natural_data if account_type == "natural" else legal_data
    return post_registration(client, account_type, build(code, **changes))


def assert_error_at(response, field: str, submitted: dict) -> None:
    """A 400 re-render with the error at ``field`` and every other submitted value kept."""
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    state = form_state(page)
    assert f"{field}-error" in state.error_ids, (field, state.error_ids)
    for name, value in submitted.items():
        if name in {field, "password", "password_confirm", "csrf_token"}:
            continue
        assert state.values.get(name) == value, (name, state.values.get(name), value)


# --- the successful flow ---------------------------------------------------------------------


def test_send_code_answers_json_ok_and_puts_a_code_in_the_outbox(app, client):
    response = request_code(app, client, PHONE)
    assert response.status_code == 200
    body = response.get_json()
    assert body["ok"] is True
    assert body["retry_after"] == app.config["SMS_RESEND_SECONDS"]
    [code] = outbox_codes(app)
    assert len(code) == 6 and code.isdigit()


def test_a_natural_person_registers_and_the_account_is_active_with_encrypted_personal_data(app, client):
    response = register(app, client, "natural")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/register/done")
    assert client.get("/register/done").status_code == 200

    account = find("li_si_2026")
    assert account is not None
    assert account.account_type == "natural"
    assert account.status == "active"
    assert account.phone_verified is True
    assert account.name == "李四"
    assert account.phone == PHONE
    assert account.document_number == "11010519491231002X"
    assert account.email == "lisi@example.cn"
    assert account.birth_date == "1949-12-31"  # derived from the resident ID
    keyring = services().keyring
    assert account.phone_index == keyring.index(PHONE, "phone")
    assert account.document_index == keyring.index("11010519491231002X", "document")
    assert services().passwords.verify(account.password_hash, PASSWORD)

    raw = raw_row("li_si_2026")
    for column, clear in [("phone", PHONE), ("document_number", "11010519491231002X"),
                          ("email", "lisi@example.cn"), ("birth_date", "1949-12-31")]:
        assert raw[column].startswith("v1."), column
        assert clear not in raw[column], column
    assert "19491231" not in raw["document_number"]
    assert "138001" not in raw["phone"]


def test_a_legal_entity_registers_and_can_sign_in_on_the_legal_tab(app, client):
    response = register(app, client, "legal")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/register/done")
    account = find("fz_unit_2026")
    assert account.account_type == "legal"
    assert account.status == "active"
    assert account.phone_verified is True
    assert account.uscc == "91350100M000100Y43"
    assert account.org_name == "福州示例科技有限公司"
    assert account.org_region == "domestic"
    assert account.phone_index == services().keyring.index(PHONE, "phone")
    raw = raw_row("fz_unit_2026")
    assert raw["phone"].startswith("v1.") and PHONE not in raw["phone"]
    assert raw["email"].startswith("v1.") and "wangwu" not in raw["email"]

    assert login(app, client, "fz_unit_2026", account_type="legal").status_code == 302


def test_a_hong_kong_resident_registers_with_a_permit_and_an_international_phone(app, client):
    hk_phone = "+85291234567"
    response = register(app, client, "natural", identity_region="hmt", document_type="hk_macao_permit",
                        document_number="H12345678", phone=hk_phone)
    assert response.status_code == 302, form_state(response.get_data(as_text=True)).error_ids
    account = find("li_si_2026")
    assert account.identity_region == "hmt"
    assert account.document_type == "hk_macao_permit"
    assert account.document_number == "H12345678"
    assert account.phone == hk_phone
    assert account.birth_date is None
    assert account.phone_index == services().keyring.index(hk_phone, "phone")
    assert account.document_index == services().keyring.index("H12345678", "document")
    raw = raw_row("li_si_2026")
    assert raw["phone"].startswith("v1.") and "91234567" not in raw["phone"]


def test_a_foreigner_registers_with_a_passport(app, client):
    response = register(app, client, "natural", identity_region="other", document_type="passport",
                        document_number="E12345678", phone="+14155550123", name="John Smith")
    assert response.status_code == 302, form_state(response.get_data(as_text=True)).error_ids
    account = find("li_si_2026")
    assert (account.identity_region, account.document_type, account.document_number) == (
        "other", "passport", "E12345678")
    assert account.phone == "+14155550123"
    assert account.status == "active"


def test_a_foreign_unit_registers_with_its_home_registration_number_without_a_uscc_check(app, client):
    # Not a USCC at all (and it would fail the GB 32100 check): only format and length apply.
    response = register(app, client, "legal", org_region="foreign", uscc="HRB-98765",
                        org_name="Example GmbH")
    assert response.status_code == 302, form_state(response.get_data(as_text=True)).error_ids
    account = find("fz_unit_2026")
    assert account.org_region == "foreign"
    assert account.uscc == "HRB-98765"
    assert account.status == "active"


def test_sql_and_html_metacharacters_are_stored_verbatim_and_shown_escaped(app, client):
    name = "<b>O'Brien\"; DROP TABLE accounts;--</b>"
    org_name = "<script>alert('x')</script>' OR '1'='1"
    response = register(app, client, "legal", name=name, org_name=org_name)
    assert response.status_code == 302, form_state(response.get_data(as_text=True)).error_ids
    account = find("fz_unit_2026")
    assert account.name == name
    assert account.org_name == org_name
    assert account_count() == 1  # the table is still there

    assert login(app, client, "fz_unit_2026", account_type="legal").status_code == 302
    page = client.get("/center/profile").get_data(as_text=True)
    assert str(escape(name)) in page
    assert str(escape(org_name)) in page
    assert "<script>alert" not in page
    assert "<b>O'Brien" not in page


def test_metacharacters_in_a_rejected_form_are_echoed_back_escaped(app, client):
    org_name = "<script>alert(1)</script>"
    code = fresh_code(app, client, PHONE, "legal")
    data = legal_data(code, org_name=org_name, uscc="91350100M000100Y4Z")
    response = post_registration(client, "legal", data)
    assert_error_at(response, "uscc", data)
    assert "<script>alert(1)</script>" not in response.get_data(as_text=True)


# --- bad input: the error at its field, other inputs kept, no account -------------------------

NATURAL_BAD_INPUT = [
    pytest.param("document_number", {"document_number": "110105194912310021"}, id="bad ID check digit"),
    pytest.param("password", {"password": "Ab1!xy", "password_confirm": "Ab1!xy"}, id="password too short"),
    pytest.param("password", {"password": "abcdefgh1", "password_confirm": "abcdefgh1"},
                 id="password too simple"),
    pytest.param("password", {"password": "Aa1!" * 33, "password_confirm": "Aa1!" * 33},
                 id="password too long"),
    pytest.param("password", {"login_name": "Zhang_San1", "password": "zhang_san1",
                              "password_confirm": "zhang_san1"}, id="password equals login name"),
    pytest.param("password_confirm", {"password_confirm": PASSWORD + "x"}, id="mismatched confirmation"),
    pytest.param("phone", {"phone": "12800138000"}, id="malformed phone"),
    pytest.param("email", {"email": "lisi@@example"}, id="malformed e-mail"),
    pytest.param("login_name", {"login_name": "ab"}, id="login name too short"),
    pytest.param("document_type", {"identity_region": "mainland", "document_type": "passport",
                                   "document_number": "E12345678"}, id="document type not fitting region"),
    pytest.param("document_type", {"identity_region": "other", "document_type": "resident_id",
                                   "document_number": "11010519491231002X"},
                 id="resident ID for a foreigner"),
]


@pytest.mark.parametrize("field, changes", NATURAL_BAD_INPUT)
def test_bad_natural_input_gives_an_error_at_its_field_and_creates_no_account(app, client, field, changes):
    code = fresh_code(app, client, PHONE)
    data = natural_data(code, **changes)
    response = post_registration(client, "natural", data)
    assert_error_at(response, field, data)
    assert account_count() == 0


def test_the_code_survives_a_form_error_and_registers_once_the_input_is_fixed(app, client):
    code = fresh_code(app, client, PHONE)
    bad = post_registration(client, "natural", natural_data(code, document_number="110105194912310021"))
    assert bad.status_code == 400
    good = post_registration(client, "natural", natural_data(code))
    assert good.status_code == 302
    assert account_count() == 1


LEGAL_BAD_INPUT = [
    pytest.param("uscc", {"uscc": "91350100M000100Y4Z"}, id="bad USCC check character"),
    pytest.param("uscc", {"uscc": "91350100M000100Y"}, id="USCC too short"),
    pytest.param("email", {"email": ""}, id="missing e-mail of the unit's contact"),
    pytest.param("org_name", {"org_name": ""}, id="missing unit name"),
]


@pytest.mark.parametrize("field, changes", LEGAL_BAD_INPUT)
def test_bad_legal_input_gives_an_error_at_its_field_and_creates_no_account(app, client, field, changes):
    code = fresh_code(app, client, PHONE, "legal")
    data = legal_data(code, **changes)
    response = post_registration(client, "legal", data)
    assert_error_at(response, field, data)
    assert account_count() == 0


@pytest.mark.parametrize("taken_as", ["li_si_2026", "LI_SI_2026", "ｌｉ＿ｓｉ＿２０２６", "Ｌｉ_Ｓｉ_2026"],
                         ids=["same", "differing by case", "full-width", "full-width and case"])
def test_a_login_name_already_registered_is_refused_at_the_login_name_field(app, client, taken_as):
    make_account("legal", login_name="li_si_2026", phone=OTHER_PHONE)  # one namespace for both types
    code = fresh_code(app, client, PHONE)
    data = natural_data(code, login_name=taken_as)
    response = post_registration(client, "natural", data)
    assert_error_at(response, "login_name", data)
    assert account_count() == 1
    # The refusal did not spend the SMS code: the same code registers another name.
    ok = post_registration(client, "natural", natural_data(code, login_name="li_si_other"))
    assert ok.status_code == 302
    assert account_count() == 2


def test_a_uscc_already_registered_is_refused_at_the_uscc_field(app, client):
    make_account("legal", login_name="first_unit", uscc="91350100M000100Y43", phone=OTHER_PHONE)
    code = fresh_code(app, client, PHONE, "legal")
    data = legal_data(code, uscc="91350100m000100y43")  # lower case is the same code
    response = post_registration(client, "legal", data)
    assert response.status_code == 400
    assert "uscc-error" in form_state(response.get_data(as_text=True)).error_ids
    for name in ("login_name", "org_name", "name", "phone", "email", "org_region", "org_kind"):
        assert form_state(response.get_data(as_text=True)).values[name] == data[name]
    assert account_count() == 1


def test_a_wrong_sms_code_is_refused_at_the_sms_code_field(app, client):
    code = fresh_code(app, client, PHONE)
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    data = natural_data(wrong)
    response = post_registration(client, "natural", data)
    assert_error_at(response, "sms_code", data)
    assert account_count() == 0


def test_a_code_sent_to_another_phone_is_refused(app, client):
    code = fresh_code(app, client, OTHER_PHONE)
    data = natural_data(code)  # registers PHONE with OTHER_PHONE's code
    response = post_registration(client, "natural", data)
    assert_error_at(response, "sms_code", data)
    assert account_count() == 0


def test_an_expired_sms_code_is_refused(app, client, clock):
    code = fresh_code(app, client, PHONE)
    clock.advance(301)
    data = natural_data(code)
    response = post_registration(client, "natural", data)
    assert_error_at(response, "sms_code", data)
    assert account_count() == 0


def test_an_sms_code_works_only_once(app, client):
    code = fresh_code(app, client, PHONE)
    assert post_registration(client, "natural", natural_data(code)).status_code == 302
    data = natural_data(code, login_name="second_user", document_number="440524188001010014")
    response = post_registration(client, "natural", data)
    assert_error_at(response, "sms_code", data)
    assert account_count() == 1
    assert find("second_user") is None


def test_registration_without_a_csrf_token_is_refused_and_creates_no_account(app, client):
    code = fresh_code(app, client, PHONE)
    response = post_registration(client, "natural", natural_data(code), with_csrf=False)
    assert response.status_code == 400
    assert 'data-reason="csrf_failed"' in response.get_data(as_text=True)
    assert account_count() == 0


def test_a_forged_csrf_token_is_refused(app, client):
    code = fresh_code(app, client, PHONE)
    data = natural_data(code, csrf_token="forged")
    response = client.post("/register/natural", data=data)
    assert response.status_code == 400
    assert 'data-reason="csrf_failed"' in response.get_data(as_text=True)
    assert account_count() == 0


def test_an_unknown_account_type_page_does_not_exist(app, client):
    assert client.get("/register/robot").status_code == 404


# --- registration review ---------------------------------------------------------------------


@pytest.mark.parametrize("settings", [{"REGISTRATION_REVIEW": True}], indirect=True, ids=["review on"])
def test_with_registration_review_the_account_waits_for_review_and_cannot_sign_in(app, client):
    response = register(app, client, "natural")
    assert response.status_code == 302
    done = client.get("/register/done").get_data(as_text=True)
    assert 'data-reason="pending_review"' in done

    account = find("li_si_2026")
    assert account.status == "pending_review"
    cases = db.session.execute(db.select(ReviewCase).filter_by(account_id=account.id)).scalars().all()
    assert [case.case_type for case in cases] == ["registration"]
    assert cases[0].state == "pending"

    refused = login(app, client, "li_si_2026")
    assert refused.status_code == 401
    assert 'data-reason="pending_review"' in refused.get_data(as_text=True)
    assert "account_id" not in session_data(app, client)


def test_without_registration_review_no_review_case_is_opened(app, client):
    assert register(app, client, "natural").status_code == 302
    assert db.session.execute(db.select(func.count(ReviewCase.id))).scalar_one() == 0
    assert login(app, client, "li_si_2026").status_code == 302


# --- concurrency ------------------------------------------------------------------------------


def test_two_simultaneous_registrations_of_one_login_name_create_exactly_one_account(app):
    phones = [PHONE, OTHER_PHONE]
    clients = [app.test_client() for _ in phones]
    prepared = []
    for client, phone in zip(clients, phones):
        code = fresh_code(app, client, phone)
        data = natural_data(code, login_name="race_winner", phone=phone,
                            csrf_token=csrf_token(client, "/register/natural"))
        prepared.append((client, data))

    responses = register_at_once(app, prepared)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [302, 400], statuses

    loser = next(r for r in responses if r.status_code == 400)
    state = form_state(loser.get_data(as_text=True))
    assert state.error_ids == {"login_name-error"}
    assert db.session.execute(
        db.select(func.count(Account.id)).filter_by(login_name_key="race_winner")
    ).scalar_one() == 1
    assert account_count() == 1


# --- one natural-person account per document ------------------------------------------------

OTHER_ID = "440524188001010014"


@pytest.mark.parametrize("typed", ["11010519491231002X", "11010519491231002x", "110105 19491231 002X"],
                         ids=["same", "lower-case check character", "with spaces"])
def test_a_document_already_registered_is_refused_at_the_document_number_and_keeps_the_code(app, client, typed):
    make_account(login_name="first_person", phone=OTHER_PHONE, identity_region="mainland",
                 document_type="resident_id", document_number="11010519491231002X")
    code = fresh_code(app, client, PHONE)
    data = natural_data(code, document_number=typed)
    response = post_registration(client, "natural", data)
    assert_error_at(response, "document_number", data)
    page = response.get_data(as_text=True)
    assert str(escape(FIELD_MESSAGES["document_taken"])) in page
    assert account_count() == 1
    # Nothing was spent: the same code registers the person's own document.
    ok = post_registration(client, "natural", natural_data(code, document_number=OTHER_ID))
    assert ok.status_code == 302
    assert account_count() == 2


def test_the_same_number_as_another_document_type_is_another_document(app, client):
    make_account(login_name="first_person", phone=OTHER_PHONE, identity_region="hmt",
                 document_type="hk_macao_permit", document_number="H12345678")
    response = register(app, client, "natural", identity_region="hmt", document_type="passport",
                        document_number="H12345678")
    assert response.status_code == 302, form_state(response.get_data(as_text=True)).error_ids
    assert account_count() == 2


def test_a_legal_representatives_document_does_not_block_the_persons_own_account(app, client):
    make_account("legal", login_name="some_unit", phone=OTHER_PHONE, legal_rep_name="李四",
                 legal_rep_document_type="resident_id", legal_rep_document_number="11010519491231002X")
    assert register(app, client, "natural").status_code == 302
    assert account_count() == 2


def test_two_simultaneous_registrations_of_one_document_create_one_account_and_the_loser_keeps_its_code(app):
    phones = [PHONE, OTHER_PHONE]
    clients = [app.test_client() for _ in phones]
    prepared = []
    for number, (client, phone) in enumerate(zip(clients, phones)):
        code = fresh_code(app, client, phone)
        data = natural_data(code, login_name=f"racer_{number}", phone=phone,
                            csrf_token=csrf_token(client, "/register/natural"))
        prepared.append((client, data))

    responses = register_at_once(app, prepared)
    assert sorted(r.status_code for r in responses) == [302, 400]
    assert account_count() == 1

    loser = next(i for i, r in enumerate(responses) if r.status_code == 400)
    assert form_state(responses[loser].get_data(as_text=True)).error_ids == {"document_number-error"}
    client, data = prepared[loser]
    retry = dict(data, document_number=OTHER_ID, csrf_token=csrf_token(client, "/register/natural"))
    assert client.post("/register/natural", data=retry).status_code == 302  # the code still worked
    assert account_count() == 2


# --- the SMS code is spent only by a registration that went through -----------------------------


def test_two_simultaneous_registrations_with_one_code_create_one_account(app):
    first, second = app.test_client(), app.test_client()
    code = fresh_code(app, first, PHONE)
    prepared = [
        (first, natural_data(code, login_name="code_user_a", csrf_token=csrf_token(first, "/register/natural"))),
        (second, natural_data(code, login_name="code_user_b", document_number=OTHER_ID,
                              csrf_token=csrf_token(second, "/register/natural"))),
    ]
    barrier = threading.Barrier(2)
    responses: list = [None, None]

    def attempt(index: int, client, data: dict) -> None:
        with app.app_context():
            barrier.wait(timeout=10)
            responses[index] = client.post("/register/natural", data=data)

    threads = [threading.Thread(target=attempt, args=(i, c, d)) for i, (c, d) in enumerate(prepared)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(r.status_code for r in responses) == [302, 400]
    loser = next(r for r in responses if r.status_code == 400)
    assert form_state(loser.get_data(as_text=True)).error_ids == {"sms_code-error"}
    assert account_count() == 1


def test_a_refused_registration_leaves_the_code_usable_and_a_successful_one_spends_it(app, client):
    make_account(login_name="first_person", phone=OTHER_PHONE, identity_region="mainland",
                 document_type="resident_id", document_number="11010519491231002X")
    code = fresh_code(app, client, PHONE)
    for refused in (natural_data(code, login_name="first_person", document_number=OTHER_ID),
                    natural_data(code)):
        assert post_registration(client, "natural", refused).status_code == 400
    assert post_registration(client, "natural", natural_data(code, document_number=OTHER_ID)).status_code == 302
    again = natural_data(code, login_name="third_person", document_number="110105198001010016")
    response = post_registration(client, "natural", again)
    assert response.status_code == 400
    assert "sms_code-error" in form_state(response.get_data(as_text=True)).error_ids
