"""One unit of work per request, CLI command and job: services only flush, and the unit commits
once at its end (docs/architecture.md, "Transactions").

- A request through Flask commits when its answer is a success or a redirect (status below 400)
  and rolls back otherwise: an error page, a refusal shown with a 4xx status, an exception.
- The endpoints answered in front of Flask (``idp.oauth.bare``) end their unit with
  ``end(commit=...)``: the token endpoint commits also when it refuses (a code works once, and a
  replayed token's revocation must stay), userinfo and introspection write nothing of their own.
- A CLI command decorated with ``command`` (in place of ``with_appcontext``) commits when it
  returns and rolls back when it raises; a job (``idp.jobs``) is one unit of its own.
- An audit event is written in the transaction of the work it describes (``idp.audit``), except
  the refusals that must be kept whatever happens to that work: failed and refused attempts
  (an outcome other than success) and the events listed in ``idp.signals.KEPT_EVENTS``. They
  are handed to ``keep`` and written through a short transaction of their own when the unit
  ends, after its commit or rollback, so that they never wait for (or hold) the unit's locks.
  A service keeps other records of a refusal the same way (an identity conflict's case).
- What must not happen before the work is durable (deleting stored files the work stops
  referring to) is handed to ``after_commit``: it runs after the commit, never after a rollback.
"""

from __future__ import annotations

import functools
import logging
from contextlib import contextmanager

from collections.abc import Callable

from flask import Flask, g, has_app_context, has_request_context
from flask.cli import with_appcontext
from sqlalchemy import event
from sqlalchemy.orm import Session

from idp.extensions import db

log = logging.getLogger(__name__)

_KEPT = "_idp_kept"  # in flask.g: the writes done in a transaction of their own when the unit ends
_AFTER_COMMIT = "idp.after_commit"  # in Session.info: run after the next commit, forgotten at a rollback


def init_app(app: Flask) -> None:
    app.after_request(_end_request)
    app.teardown_request(_teardown_request)
    for name, listener in (("after_commit", _run_after_commit), ("after_soft_rollback", _forget)):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


def begin() -> None:
    """Open a unit in the current application context (a Flask request is one already)."""
    g.setdefault(_KEPT, [])


def in_unit() -> bool:
    """Whether a unit is open here (a request, a command, ``unit()``), so that ``keep`` waits
    for its end."""
    return has_request_context() or (has_app_context() and _KEPT in g)


def keep(write: Callable[[], None]) -> None:
    """Run ``write`` (statements on ``db.session``) in a transaction of its own when the open
    unit has ended, whether it committed or rolled back. Outside a unit (code run in a bare
    application context: a test, a shell) it runs at once, in the caller's transaction. A write
    that keeps another (a job run after the unit audits a failure) is followed by it."""
    if in_unit():
        g.setdefault(_KEPT, []).append(write)
    else:
        write()


def after_commit(action: Callable[[], None]) -> None:
    """Run ``action`` after the session's next commit; a rollback forgets it."""
    db.session.info.setdefault(_AFTER_COMMIT, []).append(action)


def _run_after_commit(session: Session) -> None:
    for action in session.info.pop(_AFTER_COMMIT, None) or ():
        try:
            action()
        except Exception:  # the work is committed; what could not be tidied is logged
            log.exception("an action after the commit failed")


def _forget(session: Session, previous_transaction) -> None:
    session.info.pop(_AFTER_COMMIT, None)


def _open() -> bool:
    """Whether this context's session has begun a transaction (a request that read nothing
    has none to end)."""
    return db.session.registry.has() and db.session().in_transaction()


def end(commit: bool) -> None:
    """End the unit: commit (or roll back) the session's work, then write what was kept."""
    try:
        if _open():
            if commit:
                db.session.commit()
            else:
                db.session.rollback()
    except BaseException:
        db.session.rollback()
        raise
    finally:
        _write_all_kept()


def _end_request(response):
    if _open():
        if response.status_code < 400:
            db.session.commit()  # a failure is raised and answered by the 500 page
        else:
            db.session.rollback()
    return response


def _teardown_request(error=None) -> None:
    # After an exception answered without after_request (or one in it): nothing half-written
    # stays. Flask-SQLAlchemy removes the session when the application context ends.
    if _open():
        db.session.rollback()
    _write_all_kept()


def _write_all_kept() -> None:
    # Until none is left: a kept write may keep others (within a request, ``keep`` still
    # queues), which would otherwise wait in ``g`` for nobody.
    while has_app_context() and (writes := g.pop(_KEPT, None)):
        _write_kept(writes)


def _write_kept(writes) -> None:
    if not writes:
        return
    try:
        for write in writes:
            write()
        db.session.commit()
    except Exception:  # the answer is already decided; the log says what was lost
        db.session.rollback()
        log.exception("could not write %d kept record(s)", len(writes))


@contextmanager
def unit():
    """One unit of work in the current application context: committed when the block ends,
    rolled back when it raises; what was kept is written either way."""
    begin()
    try:
        yield
    except BaseException:
        end(commit=False)
        raise
    end(commit=True)


def command(fn):
    """A CLI command that runs in an application context as one unit of work: it commits when
    the command returns, rolls back when it raises (a usage error, a refusal)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with unit():
            return fn(*args, **kwargs)

    return with_appcontext(run)
