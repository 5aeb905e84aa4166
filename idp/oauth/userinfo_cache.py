"""What userinfo reads of an account, kept in the shared store for a few minutes.

Userinfo is the busiest endpoint that needs the database: every relying party calls it after
each sign-in, and resource servers call it per request. Reading the account was most of its
cost (bench/PROFILE.md); Keycloak keeps a user cache for the same reason.

- The entry holds the account columns the claims are made from (``claims.CLAIM_COLUMNS``)
  and the account's ``status``, which userinfo checks at every use (a disabled account's token
  is refused even if its cut-off were missed: idp.oauth.storage), encrypted with the personal-data keyring like the database columns they come from.
- Any commit that changes one of these columns of the account (profile, verification, the console)
  or deletes it replaces the entry with a short-lived tombstone. A reader that loaded the row before that
  commit adds its copy only where no entry exists (``add``), so it cannot put the old data back
  over the tombstone; readers while the tombstone lives go to the database.
- An entry that cannot be decrypted (a retired key) counts as absent.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import inspect

from idp.extensions import services
from idp.models import changes
from idp.models.accounts import Account
from idp.oauth import claims, storage
from idp.security.pii import KeyringError

TTL_SECONDS = 300
TOMBSTONE_SECONDS = 30
_KEY = "userinfo:"
_TOMBSTONE = b"-"
_CONTEXT = "cache.userinfo"
COLUMNS = [*claims.CLAIM_COLUMNS, "status"]


def key(sub: str) -> str:
    """The store key of ``sub``'s entry."""
    return _KEY + sub


def account_for_claims(sub: str | None):
    """What the claims of ``sub`` are made from: a copy from the cache, or the row itself, read
    with exactly the claim columns."""
    if not sub or len(sub) > 64:
        return None
    store, keyring = services().store, services().keyring
    cached = store.get(key(sub))
    if cached is not None and cached != _TOMBSTONE:
        try:
            entry = json.loads(keyring.decrypt(cached.decode(), _CONTEXT))
            if "status" in entry["values"]:  # an entry written before it carried the status: absent
                return _account(entry)
        except (KeyringError, ValueError, TypeError, KeyError):
            pass
        cached = None
    account = storage.account_by_sub(sub, COLUMNS)
    if account is not None and cached is None:
        values = json.dumps(_values(account, COLUMNS), ensure_ascii=False)
        store.add(key(sub), keyring.encrypt(values, _CONTEXT).encode(), TTL_SECONDS)
    return account


def _values(account: Account, columns) -> dict:
    values, times = {}, []
    for name in columns:
        value = getattr(account, name)
        if isinstance(value, datetime):
            value = value.isoformat()
            times.append(name)
        values[name] = value
    return {"values": values, "times": times}


class CachedAccount:
    """The claim columns of an account, as attributes (what ``claims.user_claims`` reads)."""

    def __init__(self, values: dict) -> None:
        self.__dict__.update(values)

    is_legal = Account.is_legal


def _account(entry: dict) -> CachedAccount:
    values = entry["values"]
    for name in entry["times"]:
        values[name] = datetime.fromisoformat(values[name])
    return CachedAccount(values)


def _sub_if_claims_change(account: Account) -> str | None:
    """The account's ``sub`` when a cached column changes or the row goes (a sign-in's
    ``last_login_at`` keeps the cache)."""
    state = inspect(account)
    if state.session is not None and account in state.session.deleted:
        return account.sub
    # committed_state holds the loaded value of every attribute set since the last flush.
    if any(name in state.committed_state for name in COLUMNS):
        return account.sub
    return None


def _accounts_written(subs: set) -> None:
    store = services().store
    for sub in subs - {None}:
        store.set(key(sub), _TOMBSTONE, TOMBSTONE_SECONDS)


changes.after_commit_of(Account, _sub_if_claims_change, _accounts_written)
