"""Authorisations of units for natural persons to act for them (代办: 用户授权管理), and the
sign-ins made while acting for a unit (for the back-channel logout of the systems concerned)."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.extensions import db
from idp.models.accounts import Account
from idp.models.types import UTCDateTime, utcnow

# Status of an authorisation. ``pending``: waiting for the person's acceptance; ``accepted``;
# ``declined`` by the person; ``revoked`` by the unit or an operator. An authorisation whose
# unit has no account yet (the legacy import: by USCC) has no ``unit_id``: it waits.
PENDING = "pending"
ACCEPTED = "accepted"
DECLINED = "declined"
REVOKED = "revoked"
LIVE_STATUSES = (PENDING, ACCEPTED)

# Who recorded it: the unit on its page, an operator (CLI), or an import (its source name).
SOURCE_UNIT = "unit"
SOURCE_CLI = "cli"


def new_delegation_id() -> str:
    """Public, unguessable (it travels in tokens as ``represents.delegation_id``)."""
    return "dlg_" + secrets.token_urlsafe(12)


class Delegation(db.Model):
    __tablename__ = "delegations"
    __table_args__ = (Index("ix_delegations_person", "person_id"),
                      Index("ix_delegations_unit", "unit_id"),
                      Index("ix_delegations_uscc", "unit_uscc"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_delegation_id)
    # None while waiting for the unit's account (grant_waiting); its USCC is kept in any case.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    unit_uscc: Mapped[str] = mapped_column(String(40))
    person_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # Every system that allows the ``delegation`` scope (as it is at each use), or those listed.
    all_clients: Mapped[bool] = mapped_column(Boolean, default=False)
    client_ids: Mapped[list] = mapped_column(JSON, default=list)
    role: Mapped[str] = mapped_column(String(40))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # exclusive; None: no end
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    source: Mapped[str] = mapped_column(String(20), default=SOURCE_UNIT)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # declined or revoked
    # When the expiry was noted (audit event, back-channel logout): tokens do not wait for it.
    expiry_noted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    unit: Mapped[Account | None] = relationship(Account, foreign_keys=[unit_id], lazy="joined")
    person: Mapped[Account] = relationship(Account, foreign_keys=[person_id], lazy="joined")


class DelegatedSignIn(db.Model):
    """A system got a code in a sign-in (``sid``) while the person acted for a unit: the
    systems a revocation or expiry sends a back-channel logout for that session."""

    __tablename__ = "delegated_sign_ins"
    __table_args__ = (UniqueConstraint("delegation_id", "sid", "client_id", name="uq_delegated_sign_ins"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delegation_id: Mapped[str] = mapped_column(ForeignKey("delegations.id", ondelete="CASCADE"))
    sid: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
