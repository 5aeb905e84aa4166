"""Migration 0007: codes, refresh tokens and SSO sessions from before the authentication record
get one derived from what they kept (the account's sub and type, their sid and auth_time, the
methods a code recorded, else a password), so that a code or refresh token issued before the
upgrade still works after it and names the same sign-in."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest
from sqlalchemy import create_engine, text

from idp import create_app
from idp.extensions import db
from tests.conftest import CHEAP_ARGON2, TEST_DATABASE_URL


@pytest.fixture
def old_database(tmp_path):
    """A database of its own (SQLite, or PostgreSQL when the suite runs on it)."""
    if not TEST_DATABASE_URL:
        yield f"sqlite:///{tmp_path / 'before-0007.db'}"
        return
    base, name = TEST_DATABASE_URL.rsplit("/", 1)
    name = f"{name}_{os.getpid()}_m0007"
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_rows_from_before_the_record_get_one_derived_from_what_they_kept(tmp_path, old_database):
    from flask_migrate import upgrade

    app = create_app({"INSTANCE_DIR": str(tmp_path), "DATABASE_URL": old_database, "REDIS_URL": "memory://",
                      **CHEAP_ARGON2})
    created = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
    with app.app_context():
        upgrade(revision="0006")
        # The account as a row of 0006's accounts table (the model has columns of later revisions).
        sub = "6f1c2a64-8c1e-4b0e-9a77-2f0f2b6f0001"
        account_id = db.session.execute(text(
            "INSERT INTO accounts (sub, account_type, login_name, login_name_key, must_change_password, status, "
            "created_at, updated_at, phone_verified, verification_status) VALUES (:sub, 'natural', 'zhang_san', "
            "'zhang_san', false, 'active', :t, :t, false, 'unverified') RETURNING id"),
            {"sub": sub, "t": created}).scalar_one()
        db.session.execute(text(
            "INSERT INTO authorization_codes (code_hash, client_id, account_id, redirect_uri, scope, auth_time, "
            "acr, amr, sid, expires_at, created_at) VALUES ('h1', 'c', :a, 'https://rp/cb', 'openid', 1700000000, "
            "'urn:cn:most:idp:acr:password', '[\"pwd\"]', 'sid-1', :t, :t)"), {"a": account_id, "t": created})
        db.session.execute(text(
            "INSERT INTO refresh_tokens (token_hash, family_id, client_id, account_id, scope, sid, auth_time, "
            "expires_at, created_at) VALUES ('h2', 'f', 'c', :a, 'openid', 'sid-1', 1700000000, :t, :t)"),
            {"a": account_id, "t": created})
        db.session.execute(text(
            "INSERT INTO sso_sessions (sid, account_id, client_ids, created_at, last_seen_at) "
            "VALUES ('sid-1', :a, '[]', :t, :t)"), {"a": account_id, "t": created})
        db.session.commit()
        upgrade()
        db.session.remove()
        from idp.models.oauth import AuthorizationCode, RefreshToken, SsoSession

        expected = {"sub": sub, "account_type": "natural", "sid": "sid-1", "auth_time": 1700000000,
                    "acr": "urn:cn:most:idp:acr:password", "amr": ["pwd"], "represents": None}
        code = db.session.execute(db.select(AuthorizationCode)).scalar_one()
        token = db.session.execute(db.select(RefreshToken)).scalar_one()
        sso = db.session.execute(db.select(SsoSession)).scalar_one()
        assert code.authentication == expected
        assert token.authentication == expected
        assert sso.authentication == {**expected, "auth_time": int(created.timestamp())}
        db.session.remove()
        db.engine.dispose()
