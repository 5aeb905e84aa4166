"""Password parameters: what a check of each account's password hash costs, beside the hash,
so that the sign-in learns the dearest check any account may still cost (the timing floor of
legacy hashes, docs/legacy-accounts.md) from an index.

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa

from idp.security.passwords import hash_params

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade():
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("password_params", sa.String(80), nullable=True))
    op.create_index("ix_accounts_password_params", "accounts", ["password_params"])
    accounts = sa.table("accounts", sa.column("id", sa.Integer), sa.column("password_hash", sa.String),
                        sa.column("password_params", sa.String))
    connection = op.get_bind()
    last = 0
    while True:
        rows = connection.execute(
            sa.select(accounts.c.id, accounts.c.password_hash)
            .where(accounts.c.id > last, accounts.c.password_hash.is_not(None))
            .order_by(accounts.c.id).limit(BATCH)
        ).all()
        if not rows:
            break
        changes = [{"key": row.id, "params": hash_params(row.password_hash)} for row in rows]
        changes = [change for change in changes if change["params"] is not None]
        if changes:
            connection.execute(accounts.update().where(accounts.c.id == sa.bindparam("key"))
                               .values(password_params=sa.bindparam("params")), changes)
        last = rows[-1].id


def downgrade():
    op.drop_index("ix_accounts_password_params", table_name="accounts")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("password_params")
