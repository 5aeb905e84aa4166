"""User management for the staff console: the rules, nothing of HTTP.

Search finds accounts by login name (prefix, exact match first), name or unit name (substring),
USCC (exact) or reserved phone (exact, through the keyed hash; nothing is decrypted to search).
Whatever staff type is searched for literally: LIKE wildcards are escaped and every value is a
bound parameter. The actions (lock, unlock, disable, enable, force a password change, end all
sessions) each send ``staff_action`` with the account's login name as subject, the staff login
as actor and ``{"action": …}`` — never personal data in clear.

Errors are raised as ``UserServiceError(reason)`` with stable reason codes (``REASONS``).
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone

import sqlalchemy as sa
from flask import current_app

from idp import signals
from idp.accounts.names import login_name_key, normalise_login_name
from idp.accounts.service import find_by_phone
from idp.errors import Refused
from idp.extensions import db, services
from idp.login import handlers
from idp.models import like
from idp.models.accounts import ACTIVE, DISABLED, Account
from idp.models.oauth import SsoSession
from idp.oauth import sessions as sso_sessions
from idp.oauth import storage
from idp.security.identifiers import normalise_mobile

SEARCH_KINDS = ("login_name", "name", "uscc", "org_name", "phone")
MAX_QUERY_LENGTH = 100
PAGE_SIZE = 50
MAX_LOCK_MINUTES = 30 * 24 * 60  # a lock set by staff lasts at most 30 days
END_SESSIONS_REASON = "staff"

REASONS = (
    "unknown_kind", "query_empty", "query_too_long", "invalid_phone",
    "invalid_minutes", "not_active", "not_disabled",
)


class UserServiceError(Refused, ValueError):
    pass


@dataclass(frozen=True)
class SearchResult:
    kind: str
    query: str
    items: list[Account] = field(default_factory=list)
    total: int = 0
    page: int = 1
    per_page: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


# --- search ---------------------------------------------------------------------------------


def _clean_query(query: str | None) -> str:
    text = (query or "").strip()
    if not text:
        raise UserServiceError("query_empty")
    if len(text) > MAX_QUERY_LENGTH:
        raise UserServiceError("query_too_long")
    return text


def _condition(kind: str, text: str):
    """(WHERE clause, ORDER BY clauses) for a text kind."""
    if kind == "login_name":
        key = login_name_key(normalise_login_name(text))
        exact_first = sa.case((Account.login_name_key == key, 0), else_=1)
        return (like.starts_with(Account.login_name_key, key),
                (exact_first, Account.login_name_key))
    if kind == "name":
        return (like.contains(Account.name, text), (Account.name, Account.id))
    if kind == "org_name":
        return (like.contains(Account.org_name, text),
                (Account.org_name, Account.id))
    if kind == "uscc":
        code = "".join(unicodedata.normalize("NFKC", text).split()).upper()
        return Account.uscc == code, (Account.id,)
    raise UserServiceError("unknown_kind")


def search(kind: str, query: str | None, page: int = 1) -> SearchResult:
    """One page of accounts matching ``query`` of ``kind`` (one of ``SEARCH_KINDS``)."""
    if kind not in SEARCH_KINDS:
        raise UserServiceError("unknown_kind")
    text = _clean_query(query)
    page = max(1, page)
    if kind == "phone":
        if normalise_mobile(text) is None:
            raise UserServiceError("invalid_phone")
        found = find_by_phone(text)  # the keyed hash of the normalised mobile
        start = (page - 1) * PAGE_SIZE
        # The clear number never goes back to the caller's page or address: the result
        # keeps only the kind.
        return SearchResult(kind, "", found[start:start + PAGE_SIZE], len(found), page)
    where, order = _condition(kind, text)
    total = db.session.execute(sa.select(sa.func.count(Account.id)).where(where)).scalar_one()
    items = list(db.session.execute(
        sa.select(Account).where(where).order_by(*order).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).scalars())
    return SearchResult(kind, text, items, total, page)


# --- one account ----------------------------------------------------------------------------


def account_by_sub(sub: str) -> Account | None:
    if not sub or len(sub) > 36:
        return None
    return db.session.execute(sa.select(Account).filter_by(sub=sub)).scalar_one_or_none()


def locked_until(account: Account) -> datetime | None:
    """Until when login refuses the account (the lock the login handler sets and checks)."""
    return handlers.locked_until(account)


def active_sessions(account: Account) -> list[SsoSession]:
    return sso_sessions.active_sessions(account.id)


# --- actions (each audited as staff_action) -------------------------------------------------


def _audited(account: Account, actor: str, action: str, **details) -> None:
    signals.staff_action.send(current_app._get_current_object(), subject=account.login_name, actor=actor,
                              outcome="success", details={"action": action, **details})


def lock(account: Account, minutes: int, actor: str) -> datetime:
    """Lock the account for ``minutes``: the same store key as the login lockout, so login
    refuses it with ``account_locked`` until then (or until unlocked). Unlike the lockout that
    wrong passwords set — which must not end anything, or anyone could sign a victim out by
    typing wrong passwords — a lock by staff ends the account's sessions and credentials as
    disabling does (``_end_everything``)."""
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= MAX_LOCK_MINUTES:
        raise UserServiceError("invalid_minutes")
    seconds = minutes * 60
    until_ts = services().clock.time() + seconds
    # The key is the login handler's own: one lock, whoever set it.
    services().store.set(handlers._lock_key(account), str(until_ts).encode(), seconds)
    until = datetime.fromtimestamp(until_ts, tz=timezone.utc)
    storage.cut_off_account(account.sub)
    ended = _end_everything(account)
    _audited(account, actor, "account_locked", minutes=minutes, until=until.isoformat(timespec="seconds"),
             sessions=ended)
    return until


def unlock(account: Account, actor: str) -> None:
    """Lift a lock (staff's or the lockout's) and forget the failures counted so far. The
    account may sign in again; what the lock ended stays ended."""
    handlers.unlock(account)
    _audited(account, actor, "account_unlocked")


def _end_sessions(account: Account) -> int:
    ended = 0
    for row in sso_sessions.active_sessions(account.id):
        if sso_sessions.end_sso_session(row.sid, reason=END_SESSIONS_REASON):
            ended += 1
    return ended


def end_all_sessions(account: Account, actor: str) -> int:
    """End every active SSO session of the account: its browser sessions are gone, the
    refresh tokens issued in them revoked, the clients told by back-channel logout."""
    ended = _end_sessions(account)
    _audited(account, actor, "sessions_ended", sessions=ended)
    return ended


def _end_everything(account: Account) -> int:
    """Every session and refresh token of the account ended (``sso_sessions.end_everything``);
    its access tokens and codes were cut off before (idp.oauth.storage)."""
    return sso_sessions.end_everything(account.id, END_SESSIONS_REASON)


def disable(account: Account, actor: str) -> int:
    """An active account becomes disabled: login refuses it (``account_disabled``), every
    credential it holds stops working at once (the commit cuts it off: idp.oauth.storage), its
    sessions end and every refresh token it holds is revoked. Returns the sessions ended."""
    if account.status != ACTIVE:
        raise UserServiceError("not_active")
    account.status = DISABLED
    db.session.flush()
    ended = _end_everything(account)
    _audited(account, actor, "account_disabled", sessions=ended)
    return ended


def enable(account: Account, actor: str) -> None:
    """A disabled account becomes active again: it may sign in; the tokens it held stay dead.
    (A pending registration is decided in the review queue, never enabled here.)"""
    if account.status != DISABLED:
        raise UserServiceError("not_disabled")
    account.status = ACTIVE
    db.session.flush()
    _audited(account, actor, "account_enabled")


def force_password_change(account: Account, actor: str) -> None:
    """At the next sign-in the user must set a new password before anything else."""
    account.must_change_password = True
    db.session.flush()
    _audited(account, actor, "password_change_forced")
