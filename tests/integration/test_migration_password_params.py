"""Migration 0013: accounts from before it get the parameters of their password hash beside it
(the sign-in's timing floor reads them, docs/legacy-accounts.md), legacy hashes included; an
account without a password, or with a hash the platform refuses, gets none."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import text

from idp import create_app
from idp.extensions import db
from tests.conftest import CHEAP_ARGON2
from tests.integration.test_migration_authentication_record import old_database  # noqa: F401  # a fixture
from tests.unit.test_legacy_hashes import django_pbkdf2, legacy_hashes


def test_accounts_from_before_get_the_parameters_of_their_hash(tmp_path, old_database):  # noqa: F811
    from flask_migrate import upgrade

    from idp.accounts.service import stored_password_params

    app = create_app({"INSTANCE_DIR": str(tmp_path), "DATABASE_URL": old_database, "REDIS_URL": "memory://",
                      **CHEAP_ARGON2})
    created = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
    hashes = {"argon2": app.extensions["idp.services"].passwords.hash("Passw0rd!"),
              "bcrypt": legacy_hashes("Passw0rd!")["bcrypt_2y"],
              "pbkdf2": django_pbkdf2("Passw0rd!", "salt", 260_000),
              "none": None, "refused": "md5$0123456789abcdef"}
    with app.app_context():
        upgrade(revision="0012")
        for number, (name, stored) in enumerate(hashes.items()):
            db.session.execute(text(
                "INSERT INTO accounts (sub, account_type, login_name, login_name_key, password_hash, "
                "must_change_password, status, created_at, updated_at, phone_verified, verification_status, "
                "must_complete_real_name) VALUES (:sub, 'natural', :name, :name, :hash, false, 'active', :t, :t, "
                "false, 'unverified', false)"),
                {"sub": f"6f1c2a64-8c1e-4b0e-9a77-2f0f2b6f000{number}", "name": name, "hash": stored, "t": created})
        db.session.commit()
        upgrade()
        db.session.remove()
        found = dict(db.session.execute(text("SELECT login_name, password_params FROM accounts")).all())
        assert found == {"argon2": "argon2id$v=19$m=1024,t=1,p=1", "bcrypt": "bcrypt$4",
                         "pbkdf2": "pbkdf2_sha256$260000", "none": None, "refused": None}
        assert sorted(stored_password_params()) == [
            "argon2id$v=19$m=1024,t=1,p=1", "bcrypt$4", "pbkdf2_sha256$260000"]
        db.session.remove()
        db.engine.dispose()
