"""Registered clients, cached per process: every token, introspection and authorization request
names its client, and reading the row each time was a third of those requests' CPU (bench/).

A change to any client (console, CLI, dynamic registration, a test) is seen at its commit: the
committing process drops its cache at once and writes a new generation to the shared store;
every other process compares generations at most once per ``CHECK_SECONDS`` and drops its
cache when they differ. A disabled client or a rotated secret therefore holds at once in the
process that changed it and within ``CHECK_SECONDS`` everywhere else.
"""

from __future__ import annotations

import copy
import secrets
import threading

from flask import current_app
from sqlalchemy import inspect

from idp.models import changes
from idp.models.clients import Client

CHECK_SECONDS = 1.0
_GENERATION_KEY = "clients:generation"
_GENERATION_TTL = 90 * 86400  # an expired generation reads as a change, which is harmless


class ClientCache:
    def __init__(self, store, clock) -> None:
        self.store = store
        self.clock = clock
        self._clients: dict[str, Client] = {}
        self._generation: bytes | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, client_id: str, load) -> Client | None:
        """The enabled client ``client_id``: from the cache, else ``load(client_id)`` (a row)."""
        self._check_generation()
        client = self._clients.get(client_id)
        if client is not None:
            return client
        cached_at = self.clock.time()  # before the read: a change after it is newer than the copy
        row = load(client_id)
        if row is None or not row.enabled:
            return None
        client = _snapshot(row)
        client.cached_at = cached_at
        with self._lock:
            self._clients[client_id] = client
        return client

    def changed(self) -> None:
        """A client was written and committed in this process."""
        generation = secrets.token_bytes(8)
        self.store.set(_GENERATION_KEY, generation, _GENERATION_TTL)
        with self._lock:
            self._clients.clear()
            self._generation = generation
            self._checked_at = self.clock.time()

    def _check_generation(self) -> None:
        now = self.clock.time()
        if now - self._checked_at < CHECK_SECONDS:
            return
        generation = self.store.get(_GENERATION_KEY)
        with self._lock:
            if generation != self._generation:
                self._clients.clear()
                self._generation = generation
            self._checked_at = now


def _snapshot(row: Client) -> Client:
    """A detached copy holding every column: it never loads, never expires, and no session
    can write it back."""
    values = {attr.key: getattr(row, attr.key) for attr in inspect(Client).column_attrs}
    return Client(**copy.deepcopy(values))


def install(app, store, clock) -> None:
    app.extensions["idp.client_cache"] = ClientCache(store, clock)


def _clients_written(client_ids: set) -> None:
    cache = current_app.extensions.get("idp.client_cache")
    if cache is not None:
        cache.changed()


changes.after_commit_of(Client, lambda client: client.client_id, _clients_written)
