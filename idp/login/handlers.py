"""Password authentication as small single-purpose checks (throttle, lockout, verify, reset).

Reason codes are stable: ``address_throttled``, ``account_locked``, ``invalid_credentials``,
``wrong_account_type``, ``pending_review``, ``account_disabled``. A wrong password only ever
yields ``invalid_credentials``; the tab is named only once the password is right.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from flask import current_app

from idp import signals
from idp.accounts.service import find_account  # also imported from here by idp.demo
from idp.extensions import db, services
from idp.models.accounts import ACTIVE, DISABLED, PENDING_REVIEW, Account
from idp.security.passwords import hash_kind
from idp.security.ratelimit import Limit


@dataclass(frozen=True)
class AuthOutcome:
    reason: str | None
    account: Account | None = None
    until: datetime | None = None
    correct_type: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def _account_failures() -> Limit:
    cfg = current_app.config
    return Limit("login_account", cfg["LOGIN_MAX_FAILURES"], cfg["LOGIN_FAILURE_WINDOW"])


def _address_failures() -> Limit:
    cfg = current_app.config
    return Limit("login_address", cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"], cfg["LOGIN_FAILURE_WINDOW"])


def _lock_key(account: Account) -> str:
    return f"lock:account:{account.id}"


def locked_until(account: Account) -> datetime | None:
    raw = services().store.get(_lock_key(account))
    return datetime.fromtimestamp(float(raw), tz=timezone.utc) if raw else None


def unlock(account: Account) -> None:
    services().store.delete(_lock_key(account))
    _account_failures().reset(str(account.id))


def authenticate(account_type: str, login_name_key: str, password: str, address: str) -> AuthOutcome:
    clock = services().clock
    per_address = _address_failures()
    if per_address.exceeded(address):
        until = datetime.fromtimestamp(clock.time() + per_address.retry_after(address), tz=timezone.utc)
        return _failed(AuthOutcome("address_throttled", until=until), login_name_key)

    account = find_account(login_name_key)
    if account is not None:
        until = locked_until(account)
        if until is not None:
            return _failed(AuthOutcome("account_locked", account, until=until), login_name_key)

    hashing = services().passwords
    if not hashing.verify(account.password_hash if account else None, password):
        per_address.hit(address)
        if account is None:
            return _failed(AuthOutcome("invalid_credentials"), login_name_key)
        if _account_failures().hit(str(account.id)) >= _account_failures().maximum:
            return _lock(account)
        return _failed(AuthOutcome("invalid_credentials", account), login_name_key)

    if account.account_type != account_type:
        return _failed(
            AuthOutcome("wrong_account_type", account, correct_type=account.account_type),
            login_name_key,
        )
    if account.status == PENDING_REVIEW:
        return _failed(AuthOutcome("pending_review", account), login_name_key)
    if account.status == DISABLED or account.status != ACTIVE:
        return _failed(AuthOutcome("account_disabled", account), login_name_key)

    _account_failures().reset(str(account.id))
    if hashing.needs_rehash(account.password_hash):  # new parameters, or a legacy format
        previous = hash_kind(account.password_hash)
        account.password_hash = hashing.hash(password)
        signals.password_rehashed.send(
            current_app._get_current_object(), subject=account.login_name,
            details={"from": previous}, committed_by_sender=True,
        )
        db.session.commit()
    return AuthOutcome(None, account)


def _lock(account: Account) -> AuthOutcome:
    cfg, clock = current_app.config, services().clock
    until_ts = clock.time() + cfg["LOGIN_LOCK_SECONDS"]
    services().store.set(_lock_key(account), str(until_ts).encode(), cfg["LOGIN_LOCK_SECONDS"])
    _account_failures().reset(str(account.id))
    until = datetime.fromtimestamp(until_ts, tz=timezone.utc)
    signals.account_locked.send(
        current_app._get_current_object(), subject=account.login_name, outcome="success",
        details={"until": until.isoformat()},
    )
    return _failed(AuthOutcome("account_locked", account, until=until), account.login_name)


def _failed(outcome: AuthOutcome, login_name: str) -> AuthOutcome:
    signals.login_failed.send(
        current_app._get_current_object(), subject=login_name, outcome="failure",
        details={"reason": outcome.reason},
    )
    return outcome
