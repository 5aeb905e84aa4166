"""Sign-in with a legacy password hash through /login: the stored hash is verified in its own
format, replaced by argon2id with the current parameters, and the next sign-in uses that."""

from __future__ import annotations

import pytest

from idp.extensions import db, services
from idp.models.accounts import Account
from tests.conftest import audit_events, login, make_account, reason_of, session_data
from tests.unit.test_legacy_hashes import legacy_hashes

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
