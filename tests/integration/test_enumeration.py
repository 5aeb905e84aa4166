"""No identity enumeration: registration, code sending and the lockout tell a stranger nothing
about whose login name, document or USCC is registered.

The attacks are the inputs: someone else's ID number, USCC or login name with a guessed SMS
code; the same with a code for the attacker's own phone; a flood of registrations from one
address; a code sent to a phone that belongs to an account; wrong passwords for a name that
does not exist, answered exactly as for one that does.
"""

from __future__ import annotations

import re

import pytest
from markupsafe import escape

from idp.accounts.views import FIELD_MESSAGES
from idp.models.accounts import Account
from tests.conftest import PASSWORD, audit_events, csrf_token, form_state, login, make_account, reason_of
from tests.integration.test_registration import (OTHER_PHONE, PHONE, account_count, find, fresh_code, legal_data,
                                                 natural_data, post_registration, request_code)

ID_NUMBER = "11010519491231002X"
OTHER_ID = "440524188001010014"
USCC = "91350100M000100Y43"
WRONG = "Wr0ng!pass"


@pytest.fixture
def settings(settings, request):
    settings.update(getattr(request, "param", {}))
    return settings


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1000000:06d}"


def someone_registered() -> None:
    """Another person with an ID number and a unit with a USCC, neither the attacker's."""
    make_account(login_name="first_person", phone=OTHER_PHONE, identity_region="mainland",
                 document_type="resident_id", document_number=ID_NUMBER)
    make_account("legal", login_name="first_unit", phone=OTHER_PHONE, uscc=USCC)


# Someone else's identifier, as the attacker types it into the registration form.
TAKEN = [
    pytest.param("natural", {"document_number": ID_NUMBER}, "document_number", "document_taken", id="ID number"),
    pytest.param("legal", {"uscc": USCC}, "uscc", "uscc_taken", id="USCC"),
    pytest.param("natural", {"login_name": "first_person", "document_number": OTHER_ID}, "login_name",
                 "login_name_taken", id="login name"),
]


def build(account_type: str, code: str, **changes) -> dict:
    return (natural_data if account_type == "natural" else legal_data)(code, **changes)


def messages_about_taken(page: str) -> list[str]:
    return [reason for reason in ("document_taken", "uscc_taken", "login_name_taken")
            if str(escape(FIELD_MESSAGES[reason])) in page]


@pytest.mark.parametrize("account_type, taken, field, reason", TAKEN)
def test_a_taken_identifier_with_a_wrong_sms_code_gets_only_the_wrong_code_error(
        app, client, account_type, taken, field, reason):
    someone_registered()
    code = fresh_code(app, client, PHONE, account_type)
    response = post_registration(client, account_type, build(account_type, wrong(code), **taken))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert form_state(page).error_ids == {"sms_code-error"}
    assert messages_about_taken(page) == []
    assert account_count() == 2


@pytest.mark.parametrize("account_type, taken, field, reason", TAKEN)
def test_a_taken_identifier_without_any_code_gets_only_the_code_error(app, client, account_type, taken, field,
                                                                       reason):
    someone_registered()
    response = post_registration(client, account_type, build(account_type, "123456", **taken))
    page = response.get_data(as_text=True)
    assert form_state(page).error_ids == {"sms_code-error"}
    assert messages_about_taken(page) == []
    assert account_count() == 2


@pytest.mark.parametrize("account_type, taken, field, reason", TAKEN)
def test_with_the_right_code_a_taken_identifier_is_named_neutrally_nothing_is_created_and_the_code_still_works(
        app, client, account_type, taken, field, reason):
    someone_registered()
    code = fresh_code(app, client, PHONE, account_type)
    data = build(account_type, code, **taken)
    response = post_registration(client, account_type, data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert form_state(page).error_ids == {f"{field}-error"}
    assert messages_about_taken(page) == [reason]
    # Neutral: nothing about the other account (its login name, its holder) is on the page.
    assert "first_person" not in page.replace('value="first_person"', "") and "first_unit" not in page
    assert account_count() == 2
    # The code was not spent (docs/security.md, SMS): the person's own data register with it.
    own = {"document_number": OTHER_ID} if account_type == "natural" else {"uscc": "91110000600037341L"}
    assert post_registration(client, account_type, build(account_type, code, **own)).status_code == 302
    assert account_count() == 3


@pytest.mark.parametrize("settings", [{"SMS_CODE_MAX_ATTEMPTS": 3}], indirect=True)
def test_one_code_answers_only_a_few_questions_about_taken_identifiers(app, client):
    someone_registered()
    code = fresh_code(app, client, PHONE)
    for _ in range(3):
        refused = post_registration(client, "natural", natural_data(code, document_number=ID_NUMBER))
        assert form_state(refused.get_data(as_text=True)).error_ids == {"document_number-error"}
    # The code is void now: the next question gets the code error only.
    response = post_registration(client, "natural", natural_data(code, document_number=ID_NUMBER))
    assert form_state(response.get_data(as_text=True)).error_ids == {"sms_code-error"}
    assert post_registration(client, "natural", natural_data(code, document_number=OTHER_ID)).status_code == 400
    assert account_count() == 2
    rejected = [e.details for e in audit_events("sms_code_rejected")]
    assert [d["reason"] for d in rejected[:3]] == ["document_taken"] * 3 and rejected[2]["voided"] is True


# --- throttling per client address -----------------------------------------------------------


@pytest.mark.parametrize("settings", [{"REGISTRATION_MAX_REFUSALS_PER_ADDRESS": 3}], indirect=True)
def test_a_registration_flood_from_one_address_is_refused_with_429_after_the_threshold(app, client):
    someone_registered()
    code = fresh_code(app, client, PHONE)
    guesses = [natural_data(f"{n:06d}", document_number=ID_NUMBER) for n in range(3)]
    assert [post_registration(client, "natural", g).status_code for g in guesses] == [400, 400, 400]
    sms_rejections = len(audit_events("sms_code_rejected"))

    # Refused at once, even with the right code: nothing checked, nothing counted, nothing created.
    response = post_registration(client, "natural", natural_data(code, document_number=OTHER_ID))
    assert response.status_code == 429
    assert reason_of(response) == "registration_throttled"
    assert int(response.headers["Retry-After"]) > 0
    assert len(audit_events("sms_code_rejected")) == sms_rejections
    assert account_count() == 2

    # Another address is not affected, and the code still works there.
    other = app.test_client()
    other_address = {"REMOTE_ADDR": "10.1.2.3"}
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"',
                      other.get("/register/natural", environ_base=other_address).get_data(as_text=True)).group(1)
    ok = other.post("/register/natural", data=natural_data(code, document_number=OTHER_ID, csrf_token=token),
                    environ_base=other_address)
    assert ok.status_code == 302


@pytest.mark.parametrize("settings", [{"REGISTRATION_MAX_REFUSALS_PER_ADDRESS": 2,
                                       "REGISTRATION_REFUSAL_WINDOW": 600}], indirect=True)
def test_the_registration_throttle_counts_refusals_only_and_ends_with_its_window(app, client, clock):
    for n in range(3):  # successful registrations are never counted
        code = fresh_code(app, client, f"1380013800{n}")
        data = natural_data(code, login_name=f"person_{n}", phone=f"1380013800{n}", identity_region="other",
                            document_type="passport", document_number=f"E1234567{n}")
        assert post_registration(client, "natural", data).status_code == 302
    for _ in range(2):
        assert post_registration(client, "natural", natural_data("000000")).status_code == 400
    assert post_registration(client, "natural", natural_data("000000")).status_code == 429
    clock.advance(601)
    assert post_registration(client, "natural", natural_data("000000")).status_code == 400


def test_sending_a_code_answers_the_same_for_a_phone_that_belongs_to_an_account(app, client, clock):
    make_account(login_name="first_person", phone=OTHER_PHONE)
    answers = []
    for phone in (OTHER_PHONE, PHONE):
        response = request_code(app, client, phone)
        answers.append((response.status_code, response.get_json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 200


# --- the lockout answers the same for names that do not exist ------------------------------


def notice(response) -> str:
    match = re.search(r'<div class="notice[^"]*"[^>]*data-reason="[^"]*"[^>]*>(.*?)</div>',
                      response.get_data(as_text=True), re.S)
    assert match, "no notice on the page"
    return match.group(1).strip()


def test_an_unknown_login_name_is_locked_exactly_like_a_known_one(app, client, clock):
    make_account(login_name="zhang_san")
    known = [login(app, app.test_client(), "zhang_san", WRONG) for _ in range(5)]
    unknown = [login(app, app.test_client(), "nobody_here", WRONG) for _ in range(5)]
    assert [r.status_code for r in known] == [r.status_code for r in unknown] == [401] * 5
    assert [reason_of(r) for r in known] == [reason_of(r) for r in unknown] == (
        ["invalid_credentials"] * 4 + ["account_locked"])
    assert [notice(r) for r in known] == [notice(r) for r in unknown]
    assert "锁定" in notice(unknown[-1]) and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", notice(unknown[-1]))
    # While locked, any password gets the same locked page; afterwards both count afresh.
    assert notice(login(app, client, "zhang_san", PASSWORD)) == notice(login(app, client, "nobody_here", PASSWORD))
    clock.advance(app.config["LOGIN_LOCK_SECONDS"] + 1)
    assert reason_of(login(app, client, "nobody_here", WRONG)) == "invalid_credentials"
    assert len(audit_events("account_locked")) == 2


def test_failures_on_a_name_nobody_holds_never_lock_the_account_later_registered_under_it(app, client):
    for _ in range(5):
        login(app, client, "new_person", WRONG)
    assert reason_of(login(app, client, "new_person", WRONG)) == "account_locked"
    make_account(login_name="new_person")
    response = login(app, app.test_client(), "new_person")
    assert response.status_code == 302
    # And the real account's own counter starts at nothing.
    responses = [login(app, app.test_client(), "new_person", WRONG) for _ in range(4)]
    assert [reason_of(r) for r in responses] == ["invalid_credentials"] * 4


def test_failures_on_a_real_account_and_on_an_unknown_name_are_counted_apart(app, client):
    make_account(login_name="zhang_san")
    for _ in range(4):
        login(app, client, "zhang_sa", WRONG)  # a typo of the real name: another name, another counter
    assert login(app, app.test_client(), "zhang_san").status_code == 302
    assert Account.query.count() == 1
