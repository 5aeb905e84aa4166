"""The legacy account import (idp.legacy): its runs, each record's outcome, the skipped lines.

``legacy_import_records`` is what makes the import idempotent and resumable: one row per
(source, kind, key) — key the USCC of a unit or the mobile of a person — written in the same
transaction as the account it made. A record that already has a row is never decided again.
The row also answers the public lookup (/account-lookup): the outcome and the login name.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.models.types import UTCDateTime, utcnow

SOURCES = ("torch", "programme", "hgr")
KINDS = ("unit", "person")

RUNNING = "running"
FINISHED = "finished"
INTERRUPTED = "interrupted"


class LegacyImportRun(db.Model):
    __tablename__ = "legacy_import_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    file_name: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the file's bytes: a resumed run and a repeated run name the same file.
    file_digest: Mapped[str] = mapped_column(String(64), index=True)
    started_by: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20), default=RUNNING)
    # The line the run has decided up to (committed), for the console while it runs.
    last_line: Mapped[int] = mapped_column(Integer, default=0)
    # The JSON line of INTERFACES.md without the skipped list: {"units": {...}, "persons":
    # {...}, "unchanged": n, "skipped": n}.
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    # A resumed run names the run it finishes (the same file, killed before its end).
    resumes_run_id: Mapped[int | None] = mapped_column(Integer)


class LegacyImportRecord(db.Model):
    __tablename__ = "legacy_import_records"
    __table_args__ = (
        # The key first: every look-up (the import's, the lookup page's) names keys; with
        # (source, kind) first a planner with stale statistics (a table growing during the
        # import) scanned every record of the source for each batch.
        UniqueConstraint("key", "kind", "source", name="uq_legacy_import_records_key"),
        Index("ix_legacy_import_records_outcome", "kind", "outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(10))
    key: Mapped[str] = mapped_column(String(40))  # the USCC (units) or the mobile (persons)
    outcome: Mapped[int] = mapped_column(Integer)  # 1–4, the numbering per kind
    # The account made (outcomes 1, 3, unit 4) or found (unit 2, person 2); None for person 4.
    account_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    login_name: Mapped[str | None] = mapped_column(String(64))
    account_type: Mapped[str | None] = mapped_column(String(10))
    run_id: Mapped[int] = mapped_column(Integer, ForeignKey("legacy_import_runs.id"), index=True)
    file_digest: Mapped[str] = mapped_column(String(64))
    line: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Unit outcome 4: the unit's authorisation the person's account is owed, waiting on the
    # USCC: {"uscc": …, "client_ids": [...], "state": "waiting"|"granted"|"refused", "delegation_id"}
    # (idp.legacy.service._owe_authorisation).
    authorisation: Mapped[dict | None] = mapped_column(JSON)


class LegacyImportSkip(db.Model):
    """A line a run refused, with the stable reason code (never the line's content)."""

    __tablename__ = "legacy_import_skips"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer, ForeignKey("legacy_import_runs.id", ondelete="CASCADE"),
                                        index=True)
    line: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(40))
    field: Mapped[str | None] = mapped_column(String(20))
