"""Password authentication as small single-purpose checks (throttle, lockout, verify, reset).

Reason codes are stable: ``address_throttled``, ``account_locked``, ``invalid_credentials``,
``wrong_account_type``, ``pending_review``, ``account_disabled``. A wrong password only ever
yields ``invalid_credentials``; the tab is named only once the password is right.

A login name that matches no account is answered exactly like one that does: the dummy hash
is checked, its failures are counted under the name's keyed hash with the same thresholds, and
at the fifth it is "locked" until the same time an account would be. Its counter and lock are
consulted only while no account holds the name, so they never lock a real account: an account
registered under a name meanwhile starts with its own, empty counter. The store keys them by
the same keyed hash the audit log shows (``idp.audit.unknown_name``), never by the typed text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from flask import current_app

from idp import signals
from idp.audit import unknown_name
from idp.accounts.service import find_account  # also imported from here by idp.demo
from idp.extensions import services
from idp.models.accounts import ACTIVE, DISABLED, PENDING_REVIEW, Account
from idp.security.passwords import hash_kind
from idp.security.ratelimit import Limit, Lockout


@dataclass(frozen=True)
class AuthOutcome:
    reason: str | None
    account: Account | None = None
    until: datetime | None = None
    correct_type: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def _accounts() -> Lockout:
    cfg = current_app.config
    return Lockout(Limit("login_account", cfg["LOGIN_MAX_FAILURES"], cfg["LOGIN_FAILURE_WINDOW"]),
                   "account", cfg["LOGIN_LOCK_SECONDS"])


def _unknown_names() -> Lockout:
    """The same thresholds as an account's, kept apart from every account's."""
    cfg = current_app.config
    return Lockout(Limit("login_name", cfg["LOGIN_MAX_FAILURES"], cfg["LOGIN_FAILURE_WINDOW"]),
                   "name", cfg["LOGIN_LOCK_SECONDS"])


def _address_failures() -> Limit:
    cfg = current_app.config
    return Limit("login_address", cfg["LOGIN_MAX_FAILURES_PER_ADDRESS"], cfg["LOGIN_FAILURE_WINDOW"])


def address_throttled_until(address: str) -> datetime | None:
    """When ``address`` may try again, if it has failed too often: shared by the citizens'
    sign-in and the staff console's, so that failures at either door count together."""
    per_address = _address_failures()
    if not per_address.exceeded(address):
        return None
    return datetime.fromtimestamp(services().clock.time() + per_address.retry_after(address), tz=timezone.utc)


def count_address_failure(address: str) -> None:
    _address_failures().hit(address)


def _lock_key(account: Account) -> str:
    return _accounts().lock_key(str(account.id))


def locked_until(account: Account) -> datetime | None:
    return _accounts().locked_until(str(account.id))


def unlock(account: Account) -> None:
    _accounts().unlock(str(account.id))


def authenticate(account_type: str, login_name_key: str, password: str, address: str) -> AuthOutcome:
    until = address_throttled_until(address)
    if until is not None:
        return _failed(AuthOutcome("address_throttled", find_account(login_name_key), until=until), login_name_key)

    account = find_account(login_name_key)
    until = locked_until(account) if account is not None else _unknown_names().locked_until(unknown_name(login_name_key))
    if until is not None:
        return _failed(AuthOutcome("account_locked", account, until=until), login_name_key)

    hashing = services().passwords
    if not hashing.verify(account.password_hash if account else None, password):
        count_address_failure(address)
        if account is None:
            until = _unknown_names().fail(unknown_name(login_name_key))
            if until is not None:
                return _locked(AuthOutcome("account_locked", until=until), login_name_key)
            return _failed(AuthOutcome("invalid_credentials"), login_name_key)
        until = _accounts().fail(str(account.id))
        if until is not None:
            return _locked(AuthOutcome("account_locked", account, until=until), login_name_key)
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

    _accounts().clear_failures(str(account.id))
    if hashing.needs_rehash(account.password_hash):  # new parameters, or a legacy format
        previous = hash_kind(account.password_hash)
        account.password_hash = hashing.hash(password)
        signals.password_rehashed.send(
            current_app._get_current_object(), subject=account.login_name,
            details={"from": previous},
        )
    return AuthOutcome(None, account)


def _audit_subject(outcome: AuthOutcome, login_name_key: str) -> str:
    """The account's login name, or the typed name's keyed hash when it matches no account."""
    return outcome.account.login_name if outcome.account is not None else unknown_name(login_name_key)


def _locked(outcome: AuthOutcome, login_name_key: str) -> AuthOutcome:
    signals.account_locked.send(
        current_app._get_current_object(), subject=_audit_subject(outcome, login_name_key), outcome="success",
        details={"until": outcome.until.isoformat()},
    )
    return _failed(outcome, login_name_key)


def _failed(outcome: AuthOutcome, login_name_key: str) -> AuthOutcome:
    signals.login_failed.send(
        current_app._get_current_object(), subject=_audit_subject(outcome, login_name_key), outcome="failure",
        details={"reason": outcome.reason},
    )
    return outcome
