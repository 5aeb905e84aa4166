"""Delegations (用户授权管理): units authorise natural persons to act for them; the sign-ins
made while acting for a unit, for the back-channel logout of the systems concerned.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "delegations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("unit_id", sa.Integer(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=True),
        sa.Column("unit_uscc", sa.String(40), nullable=False),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("all_clients", sa.Boolean(), nullable=False),
        sa.Column("client_ids", sa.JSON(), nullable=False),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expiry_noted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_delegations_person", "delegations", ["person_id"])
    op.create_index("ix_delegations_unit", "delegations", ["unit_id"])
    op.create_index("ix_delegations_uscc", "delegations", ["unit_uscc"])
    op.create_table(
        "delegated_sign_ins",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("delegation_id", sa.String(40), sa.ForeignKey("delegations.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("sid", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("delegation_id", "sid", "client_id", name="uq_delegated_sign_ins"),
    )


def downgrade():
    op.drop_table("delegated_sign_ins")
    op.drop_index("ix_delegations_uscc", "delegations")
    op.drop_index("ix_delegations_unit", "delegations")
    op.drop_index("ix_delegations_person", "delegations")
    op.drop_table("delegations")
