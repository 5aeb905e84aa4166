"""Password recovery: accounts.email_verified (an e-mail address confirmed by a code, the only
kind that may receive a reset link). Appeals are review cases (no table of their own).

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("email_verified", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade():
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("email_verified")
