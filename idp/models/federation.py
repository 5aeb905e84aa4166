"""Links between accounts here and identities at an upstream OpenID Connect provider (the
national government service platform): one row per (upstream issuer, upstream subject)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.models.types import UTCDateTime, utcnow


class UpstreamLink(db.Model):
    """An upstream identity, named by its issuer and subject only (never an e-mail, a phone or
    a document number: the account-takeover class of first-broker-login advisories), and the
    account it signs in to. One identity opens one account; one account holds at most one
    identity of each upstream."""

    __tablename__ = "upstream_links"
    __table_args__ = (
        UniqueConstraint("issuer", "subject", name="uq_upstream_links_identity"),
        UniqueConstraint("account_id", "issuer", name="uq_upstream_links_account_issuer"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    issuer: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    # "link" (proved an existing account's password) or "create" (account made from the claims)
    origin: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
