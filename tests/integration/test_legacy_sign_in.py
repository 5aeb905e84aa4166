"""Sign-in with a legacy password hash through /login: the stored hash is verified in its own
format, replaced by argon2id with the current parameters, and the next sign-in uses that."""

from __future__ import annotations

import re

import pytest

from idp.extensions import db, services
from idp.models.accounts import Account
from tests.conftest import audit_events, login, make_account, reason_of, session_data
from idp.accounts.service import stored_password_params
from tests.unit.test_legacy_hashes import django_pbkdf2, legacy_hashes

LEGACY_PASSWORD = "Torch2019!密码"
WRONG = "Wr0ng!pass"


def imported_account(login_name: str, stored_hash: str, account_type: str = "natural") -> Account:
    """An account whose password column holds the legacy hash as the import stores it."""
    account = make_account(account_type, login_name=login_name)
    account.password_hash = stored_hash
    db.session.commit()
    return account


def stored_hash(account_id) -> str:
    db.session.expire_all()
    return db.session.get(Account, account_id).password_hash


@pytest.mark.parametrize("kind", sorted(legacy_hashes("x")))
def test_a_legacy_hash_signs_in_and_is_replaced_by_current_argon2id(app, client, kind):
    legacy = legacy_hashes(LEGACY_PASSWORD)[kind]
    account = imported_account("torch_user", legacy)

    response = login(app, client, "torch_user", LEGACY_PASSWORD)

    assert response.status_code == 302, reason_of(response)
    assert session_data(app, client)["login_name"] == "torch_user"
    replaced = stored_hash(account.id)
    assert replaced.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert services().passwords.needs_rehash(replaced) is False
    [event] = audit_events("password_rehashed")
    assert event.subject == "torch_user"
    assert LEGACY_PASSWORD not in str(event.details) and legacy not in str(event.details)

    next_time = app.test_client()
    assert login(app, next_time, "torch_user", LEGACY_PASSWORD).status_code == 302
    assert stored_hash(account.id) == replaced  # current now: not hashed again
    assert len(audit_events("password_rehashed")) == 1


def test_the_audit_event_names_the_legacy_format(app, client):
    imported_account("torch_user", legacy_hashes(LEGACY_PASSWORD)["bcrypt_2y"])
    login(app, client, "torch_user", LEGACY_PASSWORD)
    [event] = audit_events("password_rehashed")
    assert event.details == {"from": "bcrypt"}


@pytest.mark.parametrize("kind", ["bcrypt_2b", "pbkdf2_sha256", "sha256", "argon2i"])
def test_a_wrong_password_against_a_legacy_hash_is_refused_and_keeps_the_hash(app, client, kind):
    legacy = legacy_hashes(LEGACY_PASSWORD)[kind]
    account = imported_account("torch_user", legacy)

    response = login(app, client, "torch_user", WRONG)

    assert response.status_code == 401
    assert reason_of(response) == "invalid_credentials"
    assert not session_data(app, client).get("account_id")
    assert stored_hash(account.id) == legacy
    assert audit_events("password_rehashed") == []


def test_a_malformed_stored_hash_refuses_sign_in_as_a_wrong_password_and_changes_nothing(app, client):
    hostile = "pbkdf2_sha256$999999999$salt$" + "A" * 43 + "="
    account = imported_account("torch_user", hostile)

    response = login(app, client, "torch_user", LEGACY_PASSWORD)

    assert reason_of(response) == "invalid_credentials"
    assert stored_hash(account.id) == hostile
    assert audit_events("password_rehashed") == []


def test_a_legacy_hash_on_the_wrong_tab_is_not_replaced(app, client):
    legacy = legacy_hashes(LEGACY_PASSWORD)["sha256"]
    account = imported_account("torch_unit", legacy, account_type="legal")

    response = login(app, client, "torch_unit", LEGACY_PASSWORD, account_type="natural")

    assert reason_of(response) == "wrong_account_type"
    assert stored_hash(account.id) == legacy


# --- accounts made by the import (idp torch import) ----------------------------------------


def _import(tmp_path, rows):
    from idp.legacy.service import import_file
    from tests import legacy_export as export

    path = tmp_path / "torch.csv"
    path.write_bytes(export.to_csv(rows))
    result = import_file(path, checkpoint=db.session.commit, started_by="test")
    db.session.commit()
    return result


@pytest.mark.parametrize("kind", sorted(legacy_hashes("x")))
def test_an_imported_person_signs_in_with_the_legacy_password_completes_real_name_data_and_is_rehashed(
        app, client, tmp_path, kind):
    from tests import legacy_export as export

    legacy = legacy_hashes(LEGACY_PASSWORD)[kind]
    _import(tmp_path, [export.person("torch_zhao", "13911112222", legacy)])
    account = db.session.execute(db.select(Account).filter_by(login_name="torch_zhao")).scalar_one()
    assert account.password_hash == legacy

    response = login(app, client, "torch_zhao", LEGACY_PASSWORD)

    assert response.status_code == 302
    assert response.headers["Location"].endswith("/login/complete-real-name")
    assert stored_hash(account.id).startswith("$argon2id$v=19$m=1024,t=1,p=1$")  # rehashed at once
    assert not session_data(app, client).get("account_id")  # not signed in before the action
    assert client.get("/center/profile").status_code == 302

    page = client.get("/login/complete-real-name")
    assert page.status_code == 200 and "torch_zhao" in page.get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True))[1]
    missing = client.post("/login/complete-real-name", data={
        "csrf_token": token, "name": "赵六", "identity_region": "mainland", "document_type": "resident_id",
        "document_number": ""})
    assert missing.status_code == 400
    assert "Please enter the document number." in missing.get_data(as_text=True) or "请输入证件号码" in missing.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Account, account.id).must_complete_real_name is True

    done = client.post("/login/complete-real-name", data={
        "csrf_token": token, "name": "赵六", "identity_region": "mainland", "document_type": "resident_id",
        "document_number": "11010519491231002X"})

    assert done.status_code == 302, done.get_data(as_text=True)[:2000]
    assert session_data(app, client)["login_name"] == "torch_zhao"
    db.session.expire_all()
    account = db.session.get(Account, account.id)
    assert account.must_complete_real_name is False
    assert account.document_number == "11010519491231002X" and account.phone == "13911112222"
    assert len(audit_events("password_rehashed")) == 1
    # The next sign-in asks nothing more.
    again = app.test_client()
    assert login(app, again, "torch_zhao", LEGACY_PASSWORD).headers["Location"].endswith("/center/profile")


def test_an_imported_unit_completes_its_legal_entity_data_at_the_first_sign_in(app, client, tmp_path):
    from tests import legacy_export as export

    code = export.uscc(77)
    _import(tmp_path, [export.unit(code, legacy_hashes(LEGACY_PASSWORD)["bcrypt_2y"])])

    response = login(app, client, code, LEGACY_PASSWORD, account_type="legal")
    assert response.headers["Location"].endswith("/login/complete-real-name")
    page = client.get("/login/complete-real-name").get_data(as_text=True)
    assert code in page and "示例科技有限公司" in page  # the imported unit data, to be completed
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)[1]
    done = client.post("/login/complete-real-name", data={
        "csrf_token": token, "org_name": "示例科技有限公司", "org_kind": "enterprise", "org_region": "domestic",
        "uscc": code, "name": "王五", "legal_rep_name": "钱七", "legal_rep_document_type": "resident_id",
        "legal_rep_document_number": "11010519491231002X"})

    assert done.status_code == 302, done.get_data(as_text=True)[:2000]
    assert session_data(app, client)["login_name"] == code
    db.session.expire_all()
    account = db.session.execute(db.select(Account).filter_by(login_name=code)).scalar_one()
    assert (account.must_complete_real_name, account.legal_rep_name) == (False, "钱七")


# --- the timing floor (docs/legacy-accounts.md, "Timing") ----------------------------------


def test_the_parameters_beside_each_hash_follow_every_change_of_it(app, client):
    current = "argon2id$v=19$m=1024,t=1,p=1"
    assert make_account("natural", login_name="argon2_user").password_params == current
    account = imported_account("torch_user", django_pbkdf2(LEGACY_PASSWORD, "salt", 260_000))
    assert account.password_params == "pbkdf2_sha256$260000"
    assert sorted(stored_password_params()) == [current, "pbkdf2_sha256$260000"]

    assert login(app, client, "torch_user", LEGACY_PASSWORD).status_code == 302  # rehashed

    db.session.expire_all()
    assert db.session.get(Account, account.id).password_params == current
    assert stored_password_params() == [current]


def test_a_dear_legacy_hash_raises_every_sign_ins_floor_until_its_owner_signs_in(app, client):
    make_account("natural", login_name="argon2_user")
    hashing = services().passwords
    assert hashing.floor_seconds() == 0
    # PBKDF2 at Django 4.2's 600,000 iterations costs far more than the tests' argon2id.
    imported_account("torch_user", django_pbkdf2(LEGACY_PASSWORD, "salt", 600_000))
    assert hashing.floor_seconds() > 0  # a wrong password for argon2_user or nobody waits for it

    assert login(app, client, "argon2_user", WRONG).status_code == 401
    assert login(app, app.test_client(), "torch_user", LEGACY_PASSWORD).status_code == 302

    assert hashing.floor_seconds() == 0
