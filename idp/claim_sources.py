"""Where the claims about an account come from: each source declares what it reads and how that
becomes claims, so whatever keeps claims (idp.oauth.userinfo_cache) knows when they change.

A source declares the columns of the account itself it reads, the rows of other models it reads
(each with the accounts whose claims such a row feeds), how it reads them from the database for
one account, and how what it read becomes claims. A commit that inserts or deletes a declared
row, or changes one of its declared columns, is a change of the claims of those accounts,
whatever made it (the console, the CLI, a service, a script: idp.models.changes). A cache that
subscribes here therefore follows a new source with no change of its own: the delegations of a
person are one more ``declare`` (idp.oauth.claims declares the account's).

This module sits below the feature packages (it imports only idp.models.changes), so a source
can be declared by the package that owns its data without an import going back up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from idp.models import changes
from idp.models.accounts import Account


@dataclass(frozen=True)
class Reads:
    """Rows of ``model`` a source reads ``columns`` of; ``subjects(row)``: the ``sub`` of each
    account whose claims the row feeds (read at flush, so it may use the row's relationships)."""

    model: type
    columns: tuple[str, ...]
    subjects: Callable[[Any], Iterable[str | None]]


@dataclass(frozen=True)
class ClaimSource:
    """One source of claims.

    - ``account_columns``: the columns of the account itself the source reads (the account is
      loaded with these only: most others are personal data, decrypted as they load).
    - ``reads``: rows of other models, or of other accounts, the source reads.
    - ``load(account)``: what the source reads for this account (loaded with at least
      ``account_columns``), as JSON values: this is what a cache keeps.
    - ``claims(data, scope)``: the claims ``data`` gives for an access token's ``scope``.
    """

    name: str
    account_columns: tuple[str, ...]
    load: Callable[[Any], Any]
    claims: Callable[[Any, str], dict]
    reads: tuple[Reads, ...] = ()


_sources: dict[str, ClaimSource] = {}
_declared: tuple[ClaimSource, ...] = ()  # _sources' values, kept for userinfo's hot path
_reads_by_model: dict[type, list[Reads]] = {}
_subscribers: list[Callable[[set[str]], None]] = []


def declare(source: ClaimSource) -> ClaimSource:
    """Add ``source``; from the next commit on, its changes reach the subscribers."""
    if source.name in _sources:
        raise ValueError(f"claim source {source.name!r} declared twice")
    _sources[source.name] = source
    _index()
    return source


def withdraw(source: ClaimSource) -> None:
    """Remove ``source`` (a test's own source, once the test is over)."""
    _sources.pop(source.name, None)
    _index()


def sources() -> tuple[ClaimSource, ...]:
    """Every declared source, in the order of declaration."""
    return _declared


def account_columns() -> list[str]:
    """Every column of the account any source reads."""
    return list(dict.fromkeys(c for source in _sources.values() for c in source.account_columns))


def on_change(callback: Callable[[set[str]], None]) -> None:
    """After each commit that changed the claims of some accounts, ``callback({sub, ...})``."""
    _subscribers.append(callback)


def _index() -> None:
    """One listener per model read (idp.models.changes), which asks every source reading it."""
    global _declared
    _declared = tuple(_sources.values())
    for reads in _reads_by_model.values():
        reads.clear()
    for source in _declared:
        for reads in (Reads(Account, source.account_columns, _own_sub), *source.reads):
            if reads.model not in _reads_by_model:
                _reads_by_model[reads.model] = []
                changes.after_commit_of(reads.model, _subjects_of(_reads_by_model[reads.model]), _claims_changed)
            _reads_by_model[reads.model].append(reads)


def _own_sub(account) -> tuple[str | None]:
    return (account.sub,)


def _subjects_of(all_reads: list[Reads]) -> Callable[[Any], frozenset]:
    def subjects(row) -> frozenset:
        found: set = set()
        for reads in all_reads:
            if changes.changed(row, reads.columns):
                found.update(reads.subjects(row))
        return frozenset(found)

    return subjects


def _claims_changed(written: set[frozenset]) -> None:
    subs = {sub for subjects in written for sub in subjects if sub}
    if subs:
        for callback in _subscribers:
            callback(subs)
