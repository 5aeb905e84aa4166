"""Housekeeping: deleting rows of short-lived things once nothing can depend on them any more
(`idp purge`, and `idp worker` every IDP_PURGE_INTERVAL). Without it, codes, refresh tokens,
SSO sessions and jobs would accumulate for ever.

What may go, and why nothing alive needs it (docs/operations.md, "Housekeeping"):

- an authorization code ``PURGE_RETENTION`` after its expiry: a used code is kept through its
  life and that margin, so that a replay still revokes what it issued (idp.oauth.storage.take_code);
- a refresh token only with its whole family, once every member expired ``PURGE_RETENTION``
  ago: a rotated or revoked member is what detects a replay (``spend_refresh_token`` revokes the
  family when it finds one), so none goes while a member of its family could still be used;
- an SSO session ``PURGE_RETENTION`` after it ended, or, never ended, once its row has been idle
  ``SESSION_LIFETIME`` plus that margin, its browser session is gone from the store (where its
  idle expiry slides; the row is touched only when a client joins) and no usable refresh token
  of the session is left (the user centre may still end it: that revokes them and tells the
  clients). Its ``delegated_sign_ins`` (back-channel logout of a delegation's end) go first;
- a job ``PURGE_RETENTION`` after it was done, or ``PURGE_JOBS_RETENTION`` after it failed
  (failed jobs are what staff look at).

Never the audit log, nor anything else. Rows go in batches of ``BATCH`` primary keys, one
DELETE each, so no statement holds long locks or reads a whole table into memory. The service
only flushes; ``after_batch`` (the CLI's and the worker's commit) ends each batch's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.orm import aliased

from idp import signals
from idp.extensions import db, services
from idp.models.delegations import DelegatedSignIn
from idp.models.oauth import AuthorizationCode, Job, RefreshToken, SsoSession

log = logging.getLogger(__name__)

BATCH = 5000
TABLES = ("authorization_codes", "refresh_tokens", "sso_sessions", "delegated_sign_ins", "jobs")
_DUE_KEY = "housekeeping:purge"  # in the shared store: one purge per interval across workers


def _batches(query, key) -> Iterator[list]:
    """The rows ``query`` selects, ``BATCH`` at a time in primary-key order (keyset: a batch
    deleted or kept never comes back)."""
    last = None
    while True:
        page = query if last is None else query.where(key > last)
        rows = db.session.execute(page.order_by(key).limit(BATCH)).all()
        if not rows:
            return
        yield rows
        if len(rows) < BATCH:
            return
        last = rows[-1][0]


def _codes(cutoff: datetime):
    return select(AuthorizationCode.id).where(AuthorizationCode.expires_at < cutoff)


def _refresh_tokens(cutoff: datetime):
    member = aliased(RefreshToken)
    younger_member = exists().where(member.family_id == RefreshToken.family_id, member.expires_at >= cutoff)
    return select(RefreshToken.id).where(RefreshToken.expires_at < cutoff, ~younger_member)


def _sessions(now: datetime, cutoff: datetime):
    idle_since = cutoff - timedelta(seconds=current_app.config["SESSION_LIFETIME"])
    usable_token = exists().where(
        RefreshToken.account_id == SsoSession.account_id, RefreshToken.sid == SsoSession.sid,
        RefreshToken.revoked_at.is_(None), RefreshToken.rotated_at.is_(None), RefreshToken.expires_at > now)
    return select(SsoSession.id, SsoSession.sid, SsoSession.session_key, SsoSession.ended_at).where(or_(
        SsoSession.ended_at < cutoff,
        and_(SsoSession.ended_at.is_(None), SsoSession.last_seen_at < idle_since, ~usable_token),
    ))


def _jobs(cutoff: datetime, failed_cutoff: datetime):
    return select(Job.id).where(or_(Job.done_at < cutoff, Job.failed_at < failed_cutoff))


def _browser_session_gone(row) -> bool:
    if row.ended_at is not None or not row.session_key:
        return True
    return not current_app.session_interface.session_exists(row.session_key)


def purge_expired(now: datetime, *, dry_run: bool = False, actor: str = "cli",
                  after_batch: Callable[[], None] = lambda: None) -> dict[str, int]:
    """Delete what can no longer matter (the module's docstring); returns the rows deleted per
    table (with ``dry_run``: the rows that would be, and nothing is deleted nor audited).
    ``after_batch`` runs after each batch's statements (the caller's commit)."""
    cfg = current_app.config
    cutoff = now - timedelta(seconds=cfg["PURGE_RETENTION"])
    failed_cutoff = now - timedelta(seconds=max(cfg["PURGE_JOBS_RETENTION"], cfg["PURGE_RETENTION"]))
    counts = dict.fromkeys(TABLES, 0)

    def remove(model, ids) -> None:
        if not dry_run:
            db.session.execute(delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False))

    for table, model, query in (("authorization_codes", AuthorizationCode, _codes(cutoff)),
                                ("refresh_tokens", RefreshToken, _refresh_tokens(cutoff)),
                                ("jobs", Job, _jobs(cutoff, failed_cutoff))):
        for rows in _batches(query, model.id):
            ids = [row[0] for row in rows]
            remove(model, ids)
            counts[table] += len(ids)
            db.session.flush()
            after_batch()

    for rows in _batches(_sessions(now, cutoff), SsoSession.id):
        gone = [row for row in rows if _browser_session_gone(row)]
        if not gone:
            continue
        sids = [row.sid for row in gone]
        children = db.session.execute(select(DelegatedSignIn.id).where(DelegatedSignIn.sid.in_(sids))).scalars().all()
        if children:  # no foreign key ties them to the session (sid): they go first, with it
            remove(DelegatedSignIn, children)
        remove(SsoSession, [row.id for row in gone])
        counts["delegated_sign_ins"] += len(children)
        counts["sso_sessions"] += len(gone)
        db.session.flush()
        after_batch()

    if not dry_run:
        signals.rows_purged.send(current_app._get_current_object(), subject="housekeeping", actor=actor,
                                 details={"deleted": counts, "retention": cfg["PURGE_RETENTION"],
                                          "jobs_retention": cfg["PURGE_JOBS_RETENTION"]})
        db.session.flush()
    log.info("purged %s", counts, extra={"event": "rows_purged", "dry_run": dry_run, "deleted": counts})
    return counts


def purge_if_due(after_batch: Callable[[], None] = lambda: None) -> dict[str, int] | None:
    """A purge in ``idp worker`` at most every ``PURGE_INTERVAL`` seconds across every worker
    sharing the store (an atomic add whose expiry is the interval); None when not due."""
    interval = current_app.config["PURGE_INTERVAL"]
    if interval <= 0 or not services().store.add(_DUE_KEY, b"1", interval):
        return None
    return purge_expired(services().clock.now(), actor="worker", after_batch=after_batch)
