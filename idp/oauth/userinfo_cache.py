"""What userinfo reads of an account, kept in the shared store for a few minutes.

Userinfo is the busiest endpoint that needs the database: every relying party calls it after
each sign-in, and resource servers call it per request. Reading the account was most of its
cost (bench/PROFILE.md); Keycloak keeps a user cache for the same reason.

- The entry holds what each claim source read for the account (idp.claim_sources: the
  account's own columns now, its delegations next) and the account's ``status``, which userinfo
  checks at every use (a disabled account's token is refused even if its cut-off were missed:
  idp.oauth.storage), encrypted with the personal-data keyring like the database columns they
  come from.
- Any commit that changes what a source declares it reads for the account (a column of the
  account, a row of another model that feeds its claims: profile, verification, the console),
  or its ``status``, or deletes it, replaces the entry with a short-lived tombstone. A reader
  that loaded the rows before that commit adds its copy only where no entry exists (``add``), so
  it cannot put the old data back over the tombstone; readers while the tombstone lives go to
  the database. No list of columns is kept here: a new source is followed as it is declared.
- An entry that cannot be decrypted (a retired key), or that lacks a source (written before the
  source was declared), counts as absent.
"""

from __future__ import annotations

import json
import threading

from idp import claim_sources
from idp.extensions import services
from idp.models import changes
from idp.models.accounts import Account
from idp.oauth import storage
from idp.security.pii import KeyringError

TTL_SECONDS = 300
TOMBSTONE_SECONDS = 30
_KEY = "userinfo:"
_TOMBSTONE = b"-"
_CONTEXT = "cache.userinfo"


def key(sub: str) -> str:
    """The store key of ``sub``'s entry."""
    return _KEY + sub


class Entry:
    """An account's ``status`` and what each claim source read for it (by source name: what
    idp.oauth.claims.gathered_claims takes). Read-only once made: it may be shared by the
    requests that read the same stored copy (``_decoded``)."""

    __slots__ = ("status", "data", "_by_scope")

    def __init__(self, status: str, data: dict) -> None:
        self.status = status
        self.data = data
        self._by_scope: dict[str, dict] = {}

    def claims(self, scope: str, sign_in: dict | None = None) -> dict:
        """``gathered_claims(self.data, scope, sign_in)``, the sources' part made once per scope."""
        from idp.oauth.claims import gathered_claims

        made = self._by_scope.get(scope)
        if made is None:
            made = self._by_scope[scope] = gathered_claims(self.data, scope)
        info = dict(made)
        if sign_in is not None:
            info.update((k, sign_in[k]) for k in ("sub", "account_type", "represents") if sign_in.get(k))
        return info


# Stored copies this process has decrypted and parsed, by their ciphertext: the store is still
# asked at every use (a change replaces the copy by a tombstone, and every copy is encrypted
# with a fresh nonce, so a ciphertext names one content only); what is saved is decrypting and
# parsing the same bytes again for every request of a resource server (bench/PROFILE.md round 7).
_DECODED_MAX = 1024
_decoded: dict[bytes, Entry] = {}
_decoded_lock = threading.Lock()


def _remember(cached: bytes, entry: Entry) -> None:
    with _decoded_lock:
        if len(_decoded) >= _DECODED_MAX:
            _decoded.pop(next(iter(_decoded)))
        _decoded[cached] = entry


def entry_for_claims(sub: str | None) -> Entry | None:
    """What the claims of ``sub`` are made from: a copy from the cache, or read by the sources
    from the database (the account with exactly the columns they declare)."""
    if not sub or len(sub) > 64:
        return None
    store, keyring = services().store, services().keyring
    sources = claim_sources.sources()
    cached = store.get(key(sub))
    if cached is not None and cached != _TOMBSTONE:
        known = _decoded.get(cached)
        if known is not None:
            return known
        try:
            entry = json.loads(keyring.decrypt(cached.decode(), _CONTEXT))
            data = entry["sources"]
            if all(source.name in data for source in sources):
                decoded = Entry(entry["status"], data)
                _remember(cached, decoded)
                return decoded
        except (KeyringError, ValueError, TypeError, KeyError):
            pass
        cached = None
    account = storage.account_by_sub(sub, ["status", *claim_sources.account_columns()])
    if account is None:
        return None
    data = {source.name: source.load(account) for source in sources}
    if cached is None:
        value = json.dumps({"status": account.status, "sources": data}, ensure_ascii=False)
        store.add(key(sub), keyring.encrypt(value, _CONTEXT).encode(), TTL_SECONDS)
    return Entry(account.status, data)


def _claims_changed(subs: set) -> None:
    store = services().store
    for sub in subs:
        store.set(key(sub), _TOMBSTONE, TOMBSTONE_SECONDS)


def _sub_if_status_changes(account: Account) -> str | None:
    """The status is the cache's own column (userinfo refuses an account no longer active), not
    a claim: it is followed here rather than declared by a source."""
    return account.sub if changes.changed(account, ("status",)) else None


claim_sources.on_change(_claims_changed)
changes.after_commit_of(Account, _sub_if_status_changes, lambda subs: _claims_changed(subs - {None}))
