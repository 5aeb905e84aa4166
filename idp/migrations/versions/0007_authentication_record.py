"""The authentication record (idp.login.record): kept whole, as JSON, with each authorization
code, refresh token and SSO session, and the only source of the sign-in's claims. Existing rows
get a record derived from what they kept (the account's sub and type, their sid and auth_time,
the methods a code recorded, else a password); the columns it replaces are dropped.

Revision ID: 0007
Revises: 0006
"""
import json
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

ACRS = {"pwd": "urn:cn:most:idp:acr:password"}  # the only method there was before this revision


def _record(sub, account_type, sid, auth_time, amr):
    amr = [m for m in (amr or ["pwd"]) if m in ("pwd", "sms", "otp", "fed")] or ["pwd"]
    return json.dumps({"sub": sub, "account_type": account_type, "sid": sid,
                       "auth_time": int(auth_time or 0), "acr": ACRS["pwd"], "amr": amr,
                       "represents": None})


def _fill(table, amr_column):
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        f"SELECT t.id, a.sub, a.account_type, t.sid, t.auth_time{', t.amr' if amr_column else ''} "
        f"FROM {table} t JOIN accounts a ON a.id = t.account_id")).fetchall()
    for row in rows:
        amr = row[5] if amr_column else None
        if isinstance(amr, str):
            amr = json.loads(amr)
        bind.execute(sa.text(f"UPDATE {table} SET authentication = :record WHERE id = :id"),
                     {"record": _record(row[1], row[2], row[3], row[4], amr), "id": row[0]})


def upgrade():
    for table in ("authorization_codes", "refresh_tokens", "sso_sessions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('authentication', sa.JSON(), nullable=True))
    _fill("authorization_codes", amr_column=True)
    _fill("refresh_tokens", amr_column=False)
    bind = op.get_bind()
    for row in bind.execute(sa.text(
            "SELECT s.id, a.sub, a.account_type, s.sid, s.created_at FROM sso_sessions s "
            "JOIN accounts a ON a.id = s.account_id")).fetchall():
        created = row[4]  # a session was created at its sign-in
        if isinstance(created, str):  # SQLite hands the stored text back
            created = datetime.fromisoformat(created)
        if created is not None and created.tzinfo is None:
            created = created.replace(tzinfo=timezone.utc)
        auth_time = int(created.timestamp()) if created is not None else 0
        bind.execute(sa.text("UPDATE sso_sessions SET authentication = :record WHERE id = :id"),
                     {"record": _record(row[1], row[2], row[3], auth_time, None), "id": row[0]})
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.drop_column('auth_time')
        batch_op.drop_column('acr')
        batch_op.drop_column('amr')
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_column('auth_time')


def downgrade():
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auth_time', sa.Integer(), nullable=True))
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auth_time', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('acr', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('amr', sa.JSON(), nullable=True))
    for table in ("authorization_codes", "refresh_tokens", "sso_sessions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('authentication')
