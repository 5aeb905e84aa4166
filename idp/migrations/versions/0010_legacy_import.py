"""The legacy account import (idp.legacy): runs, each record's outcome keyed by source, kind
and key, the skipped lines; on accounts the legacy source and the required action to complete
the real-name data.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('accounts') as batch:
        batch.add_column(sa.Column('legacy_source', sa.String(length=20), nullable=True))
        batch.add_column(sa.Column('must_complete_real_name', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_table(
        'legacy_import_runs',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('file_name', sa.String(length=255), nullable=False),
        sa.Column('file_digest', sa.String(length=64), nullable=False),
        sa.Column('started_by', sa.String(length=100), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('last_line', sa.Integer(), nullable=False),
        sa.Column('counts', sa.JSON(), nullable=False),
        sa.Column('resumes_run_id', sa.Integer(), nullable=True),
    )
    op.create_index('ix_legacy_import_runs_file_digest', 'legacy_import_runs', ['file_digest'])
    op.create_table(
        'legacy_import_records',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('key', sa.String(length=40), nullable=False),
        sa.Column('outcome', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), sa.ForeignKey('accounts.id', ondelete='SET NULL'), nullable=True),
        sa.Column('login_name', sa.String(length=64), nullable=True),
        sa.Column('account_type', sa.String(length=10), nullable=True),
        sa.Column('run_id', sa.Integer(), sa.ForeignKey('legacy_import_runs.id'), nullable=False),
        sa.Column('file_digest', sa.String(length=64), nullable=False),
        sa.Column('line', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('authorisation', sa.JSON(), nullable=True),
        sa.UniqueConstraint('key', 'kind', 'source', name='uq_legacy_import_records_key'),
    )
    op.create_index('ix_legacy_import_records_outcome', 'legacy_import_records', ['kind', 'outcome'])
    op.create_index('ix_legacy_import_records_account_id', 'legacy_import_records', ['account_id'])
    op.create_index('ix_legacy_import_records_run_id', 'legacy_import_records', ['run_id'])
    op.create_table(
        'legacy_import_skips',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('run_id', sa.Integer(), sa.ForeignKey('legacy_import_runs.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('line', sa.Integer(), nullable=False),
        sa.Column('reason', sa.String(length=40), nullable=False),
        sa.Column('field', sa.String(length=20), nullable=True),
    )
    op.create_index('ix_legacy_import_skips_run_id', 'legacy_import_skips', ['run_id'])


def downgrade():
    op.drop_table('legacy_import_skips')
    op.drop_table('legacy_import_records')
    op.drop_table('legacy_import_runs')
    with op.batch_alter_table('accounts') as batch:
        batch.drop_column('must_complete_real_name')
        batch.drop_column('legacy_source')
