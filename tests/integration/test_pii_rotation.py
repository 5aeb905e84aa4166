"""Rotating the personal-data key while servers run (``idp pii rotate-key [--retire-old]``).

The command runs in its own process with its own copy of the keyring; here it is a second
application on the same database and keyring file. A running server must follow the file
(never encrypt with a retired key), and retiring must be refused while any encrypted value
still names an old key.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from idp import create_app, unit_of_work
from idp.extensions import db, services
from idp.models.audit import AuditEvent
from idp.security.key_rotation import (
    KeyRetirementRefused,
    reencrypt,
    retire_old_keys,
    rotate_pii_key,
    stale_values,
)
from idp.security.pii import Keyring
from tests.conftest import make_account

PHONE = "13800138000"


def no_wait(saved_at, keyring):
    """The rotation's pause for the servers to notice the file: nothing to wait for here."""


@pytest.fixture
def settings(settings, tmp_path):
    settings["PII_KEYRING"] = str(tmp_path / "pii-keyring.json")
    return settings


@pytest.fixture
def command(settings, clock):
    """The ``idp`` command's process: the same configuration, its own keyring object."""
    return create_app(settings, clock=clock)


def in_command(command, work):
    """``work`` as the command runs it: one unit of work (idp.unit_of_work)."""
    db.session.rollback()  # the server's session holds nothing open meanwhile
    with command.app_context():
        try:
            with unit_of_work.unit():
                return work()
        finally:
            db.session.remove()


def raw(login_name: str, column: str) -> str:
    db.session.rollback()
    return db.session.execute(
        text(f"SELECT {column} FROM accounts WHERE login_name = :n"), {"n": login_name}
    ).scalar_one()


def keyring_file(settings) -> dict:
    with open(settings["PII_KEYRING"]) as handle:
        return json.load(handle)


def test_a_running_server_encrypts_with_the_new_key_after_rotate_key_retire_old(app, command, settings):
    make_account(login_name="before_rotation", phone=PHONE)
    server_ring = services().keyring
    assert server_ring.active == "k1"

    result = in_command(command, lambda: rotate_pii_key(retire_old=True, settle=no_wait))
    assert (result["active"], result["retired"]) == ("k2", ["k1"])
    assert set(keyring_file(settings)["keys"]) == {"k2"}

    server_ring.reload_interval = 0  # the server's next look at the file is due
    make_account(login_name="after_rotation", phone="13900139000")
    assert raw("after_rotation", "phone").startswith("v1.k2.")
    # Readable by anyone holding the keyring as it is now: nothing was written with k1.
    fresh = Keyring.load(settings["PII_KEYRING"], create=False)
    assert fresh.decrypt(raw("after_rotation", "phone"), "accounts.phone") == "13900139000"
    assert fresh.decrypt(raw("before_rotation", "phone"), "accounts.phone") == PHONE


def test_a_server_reads_rows_re_encrypted_by_the_command_without_waiting(app, command):
    account_id = make_account(login_name="zhang_san", phone=PHONE).id
    in_command(command, lambda: rotate_pii_key(retire_old=False))
    db.session.rollback()
    db.session.expire_all()
    assert raw("zhang_san", "phone").startswith("v1.k2.")
    from idp.models.accounts import Account

    assert db.session.get(Account, account_id).phone == PHONE  # k2 not seen yet: looked up at once


def test_retiring_is_refused_while_a_value_still_names_an_old_key(app, command, settings):
    make_account(login_name="zhang_san", phone=PHONE)
    services().keyring.reload_interval = 3600  # a server that has not looked at the file yet

    def rotate_and_re_encrypt():
        ring = services().keyring
        ring.add_key()
        ring.save()
        reencrypt(ring)

    in_command(command, rotate_and_re_encrypt)
    assert raw("zhang_san", "phone").startswith("v1.k2.")
    # Meanwhile the stale server writes with the old key.
    make_account(login_name="late_write", phone="13900139000", email="late@example.cn")
    assert raw("late_write", "phone").startswith("v1.k1.")

    def retire():
        with pytest.raises(KeyRetirementRefused) as refused:
            retire_old_keys(services().keyring)
        return refused.value

    refused = in_command(command, retire)
    assert refused.remaining == {"accounts.phone": 1, "accounts.email": 1}
    assert "accounts.phone: 1" in str(refused)
    assert set(keyring_file(settings)["keys"]) == {"k1", "k2"}  # nothing retired
    fresh = Keyring.load(settings["PII_KEYRING"], create=False)
    assert fresh.decrypt(raw("late_write", "phone"), "accounts.phone") == "13900139000"

    # Once the stragglers are re-encrypted, retiring goes through.
    def finish():
        reencrypt(services().keyring)
        assert stale_values(services().keyring) == {}
        return retire_old_keys(services().keyring)

    assert in_command(command, finish) == ["k1"]
    assert set(keyring_file(settings)["keys"]) == {"k2"}


def test_a_value_written_with_the_old_key_while_the_command_waits_is_re_encrypted(app, command, settings):
    make_account(login_name="zhang_san", phone=PHONE)
    services().keyring.reload_interval = 3600

    def stale_server_writes(saved_at, keyring):
        # The command waits for the servers to notice the file; one still writes with k1.
        with app.app_context():
            make_account(login_name="during_wait", phone="13900139000")
            db.session.remove()

    result = in_command(command, lambda: rotate_pii_key(retire_old=True, settle=stale_server_writes))
    assert result["retired"] == ["k1"]
    assert result["rows"] == 2
    assert raw("during_wait", "phone").startswith("v1.k2.")


def test_rotation_re_encrypts_every_encrypted_column_including_signing_keys(app, command):
    from idp.oauth import keys

    keys.ensure_keys()
    make_account(login_name="zhang_san", phone=PHONE)
    result = in_command(command, lambda: rotate_pii_key(retire_old=True, settle=no_wait))
    assert result["tables"] == {"accounts": 1, "signing_keys": 2}
    db.session.rollback()
    stored = db.session.execute(text("SELECT private_jwk FROM signing_keys")).scalars().all()
    assert stored and all(value.startswith("v1.k2.") for value in stored)
    keys.invalidate()
    services().keyring.reload_interval = 0
    _, private = keys.signing_key("RS256")
    assert private["kty"] == "RSA"


def test_a_refused_retirement_is_audited(app, command):
    make_account(login_name="zhang_san", phone=PHONE)
    # A value that no longer decrypts (copied from another column) cannot be re-encrypted.
    db.session.execute(text("UPDATE accounts SET email = phone WHERE login_name = 'zhang_san'"))
    db.session.commit()

    def rotate():
        with pytest.raises(KeyRetirementRefused):
            rotate_pii_key(retire_old=True, settle=no_wait)

    in_command(command, rotate)
    db.session.rollback()
    [event] = db.session.execute(db.select(AuditEvent).filter_by(event="pii_key_rotated")).scalars().all()
    assert event.outcome == "refused"
    assert event.details["remaining"] == {"accounts.email": 1}
    assert event.details["retired"] == []
