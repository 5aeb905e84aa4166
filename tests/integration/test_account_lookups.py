"""Look-ups through the keyed-hash index (the staff console's user search, password recovery)
and the rule behind ``accounts.document_key``: a document belongs to one natural person.

Nothing here decrypts to search: phones are found by ``phone_index``, documents by
``document_key`` (type and number), a unit's representative by ``legal_rep_document_index``.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from idp import create_app
from idp.accounts import service
from idp.accounts.service import (
    FieldError,
    find_account,
    find_by_document,
    find_by_phone,
)
from idp.extensions import db, services
from idp.login import handlers
from idp.models.accounts import Account
from tests.conftest import CHEAP_ARGON2, make_account

ID_NUMBER = "11010519491231002X"
OTHER_ID = "440524188001010014"


def person(login_name: str, phone: str = "13800138000", **profile) -> Account:
    return make_account(login_name=login_name, phone=phone, **profile)


# --- find_by_phone ---------------------------------------------------------------------------


def test_find_by_phone_returns_every_account_with_that_reserved_phone(app):
    first = person("first_person")
    unit = make_account("legal", login_name="some_unit", phone="13800138000")
    person("other_person", phone="13900139000")
    assert [a.id for a in find_by_phone("13800138000")] == [first.id, unit.id]


@pytest.mark.parametrize("typed", ["+86 138 0013 8000", "138-0013-8000", "+8613800138000"])
def test_find_by_phone_accepts_any_written_form_of_the_number(app, typed):
    first = person("first_person")
    assert [a.id for a in find_by_phone(typed)] == [first.id]


def test_find_by_phone_finds_an_international_number(app):
    hk = person("hk_person", phone="+85291234567")
    assert [a.id for a in find_by_phone("+852 9123 4567")] == [hk.id]


@pytest.mark.parametrize("typed", ["13700137000", "12800138000", "", "not a phone"])
def test_find_by_phone_returns_an_empty_list_for_an_unknown_or_malformed_number(app, typed):
    person("first_person")
    assert find_by_phone(typed) == []


# --- find_by_document ------------------------------------------------------------------------


def test_find_by_document_finds_the_natural_person_by_type_and_number(app):
    owner = person("first_person", identity_region="mainland", document_type="resident_id",
                   document_number=ID_NUMBER)
    assert find_by_document("resident_id", ID_NUMBER).id == owner.id
    assert find_by_document("resident_id", "110105 19491231 002x").id == owner.id  # as typed


def test_find_by_document_needs_the_type_as_well_as_the_number(app):
    person("hk_person", identity_region="hmt", document_type="hk_macao_permit", document_number="H12345678")
    assert find_by_document("passport", "H12345678") is None
    assert find_by_document("hk_macao_permit", "H12345678") is not None


def test_find_by_document_does_not_return_a_unit_whose_representative_holds_it(app):
    make_account("legal", login_name="some_unit", legal_rep_name="王五", legal_rep_document_type="resident_id",
                 legal_rep_document_number=ID_NUMBER)
    assert find_by_document("resident_id", ID_NUMBER) is None


@pytest.mark.parametrize("document_type, number", [("", ID_NUMBER), ("resident_id", ""), (None, None)])
def test_find_by_document_without_type_or_number_finds_nothing(app, document_type, number):
    person("first_person", identity_region="mainland", document_type="resident_id", document_number=ID_NUMBER)
    assert find_by_document(document_type, number) is None


def test_the_document_key_is_a_keyed_hash_not_the_number(app):
    person("first_person", identity_region="mainland", document_type="resident_id", document_number=ID_NUMBER)
    stored = db.session.execute(text("SELECT document_key FROM accounts")).scalar_one()
    assert len(stored) == 64 and ID_NUMBER not in stored and "19491231" not in stored
    assert stored == service.document_key("resident_id", ID_NUMBER)


# --- the rule, at the service ----------------------------------------------------------------


def test_creating_a_second_account_with_the_same_document_is_refused_at_the_number(app):
    person("first_person", identity_region="mainland", document_type="resident_id", document_number=ID_NUMBER)
    with pytest.raises(FieldError) as refused:
        person("second_person", phone="13900139000", identity_region="mainland", document_type="resident_id",
               document_number=ID_NUMBER.lower())
    assert (refused.value.field, refused.value.reason) == ("document_number", "document_taken")
    assert find_account("second_person") is None


def test_the_database_refuses_a_second_account_with_the_same_document_key(app):
    person("first_person", identity_region="mainland", document_type="resident_id", document_number=ID_NUMBER)
    second = person("second_person", phone="13900139000")
    with pytest.raises(sa.exc.IntegrityError):
        db.session.execute(text("UPDATE accounts SET document_key = :k WHERE id = :id"),
                           {"k": service.document_key("resident_id", ID_NUMBER), "id": second.id})
        db.session.flush()
    db.session.rollback()


def test_accounts_without_a_document_do_not_clash(app):
    person("first_person")
    person("second_person", phone="13900139000")
    assert db.session.execute(text("SELECT count(*) FROM accounts WHERE document_key IS NULL")).scalar() == 2


def test_a_document_type_not_fitting_the_region_is_refused_by_the_service(app):
    with pytest.raises(FieldError) as refused:
        person("first_person", identity_region="other", document_type="resident_id", document_number=ID_NUMBER)
    assert (refused.value.field, refused.value.reason) == ("document_type", "document_type_region_mismatch")


# --- find_account ----------------------------------------------------------------------------


def test_find_account_lives_in_the_service_and_the_login_handlers_still_offer_it(app):
    account = person("Zhang_San")
    assert find_account("zhang_san").id == account.id
    assert find_account("nobody") is None
    assert handlers.find_account is find_account


# --- the schema ------------------------------------------------------------------------------


def test_the_schema_has_a_unique_document_key_and_an_index_on_the_representatives_document(app):
    indexes = {ix["name"]: ix for ix in sa.inspect(db.engine).get_indexes("accounts")}
    assert indexes["uq_accounts_document_key"]["unique"]
    assert indexes["uq_accounts_document_key"]["column_names"] == ["document_key"]
    assert indexes["ix_accounts_legal_rep_document_index"]["column_names"] == ["legal_rep_document_index"]


def test_migration_0003_fills_the_document_key_and_leaves_older_duplicates_to_the_operator(tmp_path):
    database = f"sqlite:///{tmp_path / 'migrated.db'}"
    app = create_app({"INSTANCE_DIR": str(tmp_path), "DATABASE_URL": database, **CHEAP_ARGON2})
    with app.app_context():
        upgrade(revision="0002")
        # Rows as they were before 0003 (no document_key column yet), one duplicate among them.
        keyring = services().keyring
        rows = [("natural", "first", ID_NUMBER), ("natural", "second", OTHER_ID),
                ("natural", "copy_of_first", ID_NUMBER), ("legal", "unit", None)]
        for number, (account_type, login_name, document) in enumerate(rows):
            db.session.execute(text(
                "INSERT INTO accounts (sub, account_type, login_name, login_name_key, must_change_password, "
                "status, created_at, updated_at, phone_verified, verification_status, document_type, "
                "document_number, legal_rep_document_type, legal_rep_document_number) VALUES (:sub, :type, "
                ":name, :name, false, 'active', :now, :now, false, 'unverified', :doc_type, :doc, "
                ":rep_type, :rep_doc)"
            ), {
                "sub": f"sub-{number}", "type": account_type, "name": login_name, "now": "2026-01-01 00:00:00",
                "doc_type": "resident_id" if document else None,
                "doc": keyring.encrypt(document, "accounts.document_number") if document else None,
                "rep_type": None if document else "resident_id",
                "rep_doc": None if document else keyring.encrypt(OTHER_ID, "accounts.legal_rep_document_number"),
            })
        db.session.commit()
        upgrade()
        keys = dict(db.session.execute(text("SELECT login_name, document_key FROM accounts")).all())
        assert keys["first"] == service.document_key("resident_id", ID_NUMBER)
        assert keys["second"] == service.document_key("resident_id", OTHER_ID)
        assert keys["copy_of_first"] is None
        assert keys["unit"] is None
        downgrade(revision="0002")
        columns = {c["name"] for c in sa.inspect(db.engine).get_columns("accounts")}
        assert "document_key" not in columns
        db.session.remove()
        db.engine.dispose()
