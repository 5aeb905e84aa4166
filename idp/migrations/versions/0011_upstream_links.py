"""Upstream links: accounts signed in through the national platform (an upstream OpenID
Connect provider), by the upstream's issuer and subject.

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "upstream_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("issuer", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("origin", sa.String(10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("issuer", "subject", name="uq_upstream_links_identity"),
        sa.UniqueConstraint("account_id", "issuer", name="uq_upstream_links_account_issuer"),
    )
    op.create_index("ix_upstream_links_account_id", "upstream_links", ["account_id"])


def downgrade():
    op.drop_index("ix_upstream_links_account_id", table_name="upstream_links")
    op.drop_table("upstream_links")
