"""Writes every security event to the audit log, as a subscriber of the domain signals."""

from __future__ import annotations

from flask import g, has_app_context, has_request_context, request, session
from sqlalchemy import insert

from idp import unit_of_work
from idp.extensions import db, services
from idp.models.audit import AuditEvent
from idp.signals import KEPT_EVENTS, SECURITY_EVENTS


# One prebuilt statement, not an ORM object: every sign-in writes an event, and the unit of
# work for one row cost more than the statement (bench/PROFILE.md).
_INSERT_EVENT = insert(AuditEvent.__table__)


def client_address() -> str | None:
    """The caller's address; X-Forwarded-For is honoured through ProxyFix only. The endpoints
    answered in front of Flask (idp.oauth.bare) keep it in ``g``."""
    if has_request_context():
        return request.remote_addr
    return g.get("client_address") if has_app_context() else None


UNKNOWN_NAME_PREFIX = "unknown:"


def unknown_name(typed: str) -> str:
    """How the log names a typed login name that matches no account: a keyed hash of its
    normalised form (``UNKNOWN_NAME_PREFIX`` + hex), never the text. People type phone
    numbers and ID numbers into the login name field; the hash still lets staff find every
    attempt on one name (the console's subject filter hashes what it is given) and see
    repeated guesses, without the log holding the personal data."""
    return UNKNOWN_NAME_PREFIX + services().keyring.index(typed, "typed_login_name")


def record(event: str, outcome: str, subject=None, actor=None, details=None, kept: bool = False) -> None:
    """Write the event in the current unit of work: committed with the work it describes, or
    rolled back with it. ``kept``: a refusal written through a short transaction of its own,
    whatever happens to the work (idp.unit_of_work.keep)."""
    if actor is None and has_request_context():
        actor = session.get("login_name")
    row = {
        "event": event,
        "outcome": outcome,
        "subject": None if subject is None else str(subject)[:100],
        "actor": None if actor is None else str(actor)[:100],
        "client_address": client_address(),
        "details": details or None,
    }
    if kept:
        unit_of_work.keep(lambda: db.session.execute(_INSERT_EVENT, row))
    else:
        db.session.execute(_INSERT_EVENT, row)


def _subscriber(signal):
    always_kept = signal in KEPT_EVENTS

    def write(sender, subject=None, outcome="success", details=None, actor=None, **_):
        record(signal.name, outcome, subject=subject, actor=actor, details=details,
               kept=always_kept or outcome != "success")

    return write


_subscribers = [(signal, _subscriber(signal)) for signal in SECURITY_EVENTS]


def connect() -> None:
    for signal, handler in _subscribers:
        signal.connect(handler)
