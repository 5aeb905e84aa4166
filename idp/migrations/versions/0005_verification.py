"""Real-name verification: the verification record on accounts (time, method, reference,
the reviewer's reason, the verified data encrypted) and the clients' require_verified.

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('verification_method', sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column('verification_reference', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('verification_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('verified_data', sa.Text(), nullable=True))
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('require_verified', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade():
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('require_verified')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('verified_data')
        batch_op.drop_column('verification_reason')
        batch_op.drop_column('verification_reference')
        batch_op.drop_column('verification_method')
        batch_op.drop_column('verified_at')
