"""Review cases: one model for every manual review (registration, verification, appeals).

The staff queue (admin issue) lists, claims and decides cases; the areas that open them only
create a case with its type and the submitted data.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.models.types import UTCDateTime, utcnow

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
# Withdrawn without a decision: the applicant changed the data under review (verification).
VOIDED = "voided"

REGISTRATION = "registration"
VERIFICATION = "verification"
IDENTITY_CONFLICT = "identity_conflict"
PASSWORD_APPEAL = "password_appeal"  # nosec B105  # a case type name (申诉找回密码, idp.recovery), not a credential


class ReviewCase(db.Model):
    __tablename__ = "review_cases"
    __table_args__ = (Index("ix_review_cases_state_type", "state", "case_type"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_type: Mapped[str] = mapped_column(String(30))
    state: Mapped[str] = mapped_column(String(20), default=PENDING)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    data: Mapped[dict | None] = mapped_column(JSON)
    reviewer: Mapped[str | None] = mapped_column(String(100))
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
