"""Jobs: an encrypted ``sealed`` part (recipients and secrets of retried notices) and ``about``
(jobs of one kind about one thing replace one another: a verification retry per account).

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("sealed", sa.Text(), nullable=True))
        batch.add_column(sa.Column("about", sa.String(100), nullable=True))
    op.create_index("ix_jobs_about", "jobs", ["kind", "about"])


def downgrade():
    op.drop_index("ix_jobs_about", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("about")
        batch.drop_column("sealed")
