"""Run code after a commit that wrote rows of a model, whatever wrote them (the console, the CLI,
a service, a test): the caches of clients and of claims (through idp.claim_sources) hear of
changes here.

What a listener needs of a row is read when the row is flushed, since no SQL may run after
the commit; the callbacks run after it, and a rollback forgets everything noted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

_NOTED = "idp.written"
_listeners: list[tuple[type, Callable[[Any], Any], Callable[[set], None]]] = []


def after_commit_of(model: type, key: Callable[[Any], Any], callback: Callable[[set], None]) -> None:
    """After each commit that wrote ``model`` rows, ``callback({key(row), ...})``."""
    _listeners.append((model, key, callback))


def changed(row, columns) -> bool:
    """Whether the flush under way inserts or deletes ``row`` or changes one of ``columns``
    (for a ``key`` that ignores the other columns: a sign-in's ``last_login_at`` is no change of
    the claims)."""
    state = inspect(row)
    if state.pending or (state.session is not None and row in state.session.deleted):
        return True
    # committed_state holds the loaded value of every attribute set since the last flush.
    return any(name in state.committed_state for name in columns)


def _note(session: Session, flush_context, instances) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        for index, (model, key, _) in enumerate(_listeners):
            if isinstance(obj, model):
                session.info.setdefault(_NOTED, {}).setdefault(index, set()).add(key(obj))


def _after_commit(session: Session) -> None:
    written = session.info.pop(_NOTED, None)
    for index, keys in (written or {}).items():
        _listeners[index][2](keys)


def _forget(session: Session, previous_transaction) -> None:
    session.info.pop(_NOTED, None)


def install() -> None:
    """Listens to every session (idempotent: each create_app calls it)."""
    for name, listener in (("before_flush", _note), ("after_commit", _after_commit),
                           ("after_soft_rollback", _forget)):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)
