"""Clients registered dynamically wait for staff approval before the service catalogue lists
them (every client that exists already counts as approved); automatic verifications made by
the local development verifier are named as such.

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('approved', sa.Boolean(), nullable=False, server_default=sa.true()))
    # The local verifier's references start with "local-" and were stored as national_platform
    # checks: they were only check-digit tests (a registry file is development data too).
    op.execute("UPDATE accounts SET verification_method = 'local_check_digits' "
               "WHERE verification_method = 'national_platform' AND verification_reference LIKE 'local-%'")


def downgrade():
    op.execute("UPDATE accounts SET verification_method = 'national_platform' "
               "WHERE verification_method IN ('local_check_digits', 'local_registry')")
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('approved')
