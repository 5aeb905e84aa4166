"""Accounts of natural persons (自然人) and legal entities (法人, 单位用户)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, validates

from idp.extensions import db
from idp.models.types import Encrypted, UTCDateTime, utcnow
from idp.security.passwords import hash_params

NATURAL = "natural"
LEGAL = "legal"
ACCOUNT_TYPES = (NATURAL, LEGAL)

ACTIVE = "active"
PENDING_REVIEW = "pending_review"
DISABLED = "disabled"

# Personal data columns: encrypted at rest, and the attributes `idp pii rotate-key` rewrites.
PERSONAL_FIELDS = (
    "phone", "landline", "birth_date", "document_number", "email", "address",
    "legal_rep_document_number", "verified_data",
)

# Real-name verification statuses (INTERFACES.md "Scopes and claims").
UNVERIFIED = "unverified"
VERIFICATION_PENDING = "pending"
VERIFIED_AUTO = "verified_auto"
VERIFIED_MANUAL = "verified_manual"
VERIFICATION_REJECTED = "rejected"
VERIFIED_STATUSES = (VERIFIED_AUTO, VERIFIED_MANUAL)


class Account(db.Model):
    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("account_type in ('natural', 'legal')", name="ck_accounts_type"),
        Index("ix_accounts_phone_index", "phone_index"),
        Index("ix_accounts_document_index", "document_index"),
        Index("ix_accounts_org_name", "org_name"),
        Index("ix_accounts_legal_rep_document_index", "legal_rep_document_index"),
        Index("uq_accounts_document_key", "document_key", unique=True),
        Index("ix_accounts_password_params", "password_params"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Public, stable subject identifier for tokens; never the database id.
    sub: Mapped[str] = mapped_column(String(36), unique=True, default=lambda: str(uuid.uuid4()))
    account_type: Mapped[str] = mapped_column(String(10))
    login_name: Mapped[str] = mapped_column(String(64))
    # Case-folded NFKC form: one namespace across both account types, case-insensitive.
    login_name_key: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # What a check of the hash costs (``passwords.hash_params``), kept beside it so that the
    # sign-in learns the dearest check any account may still cost from the index alone.
    password_params: Mapped[str | None] = mapped_column(String(80))
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default=ACTIVE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # Person: the natural person, or for a legal account its contact / authorised person.
    name: Mapped[str | None] = mapped_column(String(100))
    gender: Mapped[str | None] = mapped_column(String(10))
    ethnicity: Mapped[str | None] = mapped_column(String(40))
    job_title: Mapped[str | None] = mapped_column(String(100))
    birth_date: Mapped[str | None] = mapped_column(Encrypted("accounts.birth_date"))
    email: Mapped[str | None] = mapped_column(Encrypted("accounts.email"))
    phone: Mapped[str | None] = mapped_column(Encrypted("accounts.phone"))  # 预留手机号
    phone_index: Mapped[str | None] = mapped_column(String(64))
    phone_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    # The e-mail address was confirmed by a code sent to it (idp.recovery); a changed address
    # is unconfirmed again. Only a confirmed address is a channel of password recovery.
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    landline: Mapped[str | None] = mapped_column(Encrypted("accounts.landline"))
    identity_region: Mapped[str | None] = mapped_column(String(20))
    document_type: Mapped[str | None] = mapped_column(String(40))
    document_number: Mapped[str | None] = mapped_column(Encrypted("accounts.document_number"))
    document_index: Mapped[str | None] = mapped_column(String(64))
    # Keyed hash of "type:number": one natural-person account per identity document.
    document_key: Mapped[str | None] = mapped_column(String(64))
    document_valid_until: Mapped[str | None] = mapped_column(String(20))
    address: Mapped[str | None] = mapped_column(Encrypted("accounts.address"))

    # Unit (legal accounts only).
    org_name: Mapped[str | None] = mapped_column(String(200))
    # USCC for domestic units, home registration number for units outside the mainland.
    uscc: Mapped[str | None] = mapped_column(String(40), unique=True)
    org_kind: Mapped[str | None] = mapped_column(String(30))
    org_region: Mapped[str | None] = mapped_column(String(20))
    legal_rep_name: Mapped[str | None] = mapped_column(String(100))
    legal_rep_document_type: Mapped[str | None] = mapped_column(String(40))
    legal_rep_document_number: Mapped[str | None] = mapped_column(
        Encrypted("accounts.legal_rep_document_number")
    )
    legal_rep_document_index: Mapped[str | None] = mapped_column(String(64))

    # Real-name verification (idp.verification.service holds the rules).
    verification_status: Mapped[str] = mapped_column(String(20), default=UNVERIFIED)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # national_platform, local_check_digits or local_registry (automatic check: idp.services.verifier)
    # or document_review (manual review of uploads)
    verification_method: Mapped[str | None] = mapped_column(String(30))
    # The national interface's reference, or "case-<id>" for a manual review.
    verification_reference: Mapped[str | None] = mapped_column(String(100))
    # The reviewer's reason of the latest rejection, shown in 我的信息.
    verification_reason: Mapped[str | None] = mapped_column(Text)
    # JSON of the data as verified (name and birth date, or unit name and USCC): what
    # verified_claims asserts, whatever was edited since.
    verified_data: Mapped[str | None] = mapped_column(Encrypted("accounts.verified_data"))
    notes: Mapped[str | None] = mapped_column(Text)

    # Accounts imported from a legacy system (idp.legacy): ``torch``, ``programme`` or ``hgr``;
    # they must complete their real-name data at their first sign-in (a required action).
    legacy_source: Mapped[str | None] = mapped_column(String(20))
    must_complete_real_name: Mapped[bool] = mapped_column(Boolean, default=False)

    @validates("password_hash")
    def _follow_the_hash(self, _key: str, value: str | None) -> str | None:
        self.password_params = hash_params(value)
        return value

    @property
    def is_legal(self) -> bool:
        return self.account_type == LEGAL

    def __repr__(self) -> str:
        return f"<Account {self.id} {self.account_type} {self.login_name!r}>"
