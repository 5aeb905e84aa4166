"""Revoked access tokens (by ``jti``): written to the store for as long as the token lives, and,
with Redis, known to every process without asking.

Access tokens are JWTs, so a resource server's introspection or userinfo call needs no database;
what was left was one Redis round trip to ask whether the token was revoked, a fifth of
introspection's CPU (bench/PROFILE.md). With Redis, each process keeps the revoked ``jti``s in
memory: every revocation is also published on a channel that a thread of each process follows,
and the thread reads the whole list from the store once it is subscribed, so nothing revoked
before it was listening is missed. While it is not listening (before its first use, after a lost
connection, until it is subscribed again) the store is asked at every use, as before.

A revocation reaches the other processes within the time Redis takes to deliver a message. Each
thread also publishes a heartbeat every few seconds and expects to hear one: a subscription
that has died without an error (a half-open connection, a failover) is given up after three
heartbeats unheard, and the list is read again whenever the subscription is made anew (by this
thread, or by redis-py reconnecting on its own). The in-process store (one process) is simply
asked: there, that is a dictionary look-up.

Besides single tokens, the list holds *cut-offs*: "every credential of this account (or client)
issued at or before this moment is dead" (``cut_off``). Disabling, locking or deleting an account
and disabling or deleting a client writes one, so that every token it ever got, however it was
issued and whether or not a row records it (client credentials, a code exchanged without a refresh
token), is refused at its next use, in every process at once, by one more dictionary look-up. A
cut-off lives as long as the longest-lived token it can concern.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref

from idp.errors import unavailable_dependency
from idp.store import RedisStore

_KEY = "revoked_jti:"
_CUT_OFF_KEY = "cut_off:"
_CUT_OFF_MESSAGE = "cut_off"
_CHANNEL = "revocations"
# The revocation outlives the token by this much: room for clocks a little apart.
_MARGIN_SECONDS = 60
_PURGE_EVERY_SECONDS = 60
_RETRY_SECONDS = 1.0
HEARTBEAT_SECONDS = 5.0
_HEARTBEAT = b"-"

log = logging.getLogger(__name__)


class StoreRevocationList:
    """Asks the store at every use."""

    def __init__(self, store, clock) -> None:
        self.store = store
        self.clock = clock

    def revoke(self, jti: str, ttl: float) -> None:
        """``ttl``: how long the token still lives."""
        if ttl > 0:
            self.store.set(_KEY + jti, b"1", ttl + _MARGIN_SECONDS)

    def is_revoked(self, jti: str) -> bool:
        return self.store.get(_KEY + jti) is not None

    def cut_off(self, name: str, at: float, ttl: float) -> None:
        """Every credential of ``name`` (``sub:…``, ``client:…``) issued at or before ``at`` is
        dead; ``ttl``: how long such a credential may still live. A later cut-off replaces an
        earlier one (it covers everything the earlier one did)."""
        if ttl > 0:
            self.store.set(_CUT_OFF_KEY + name, repr(at).encode(), ttl + _MARGIN_SECONDS)

    def cut_off_at(self, name: str) -> float | None:
        """The moment of ``name``'s live cut-off, if any."""
        raw = self.store.get(_CUT_OFF_KEY + name)
        return float(raw) if raw is not None else None

    def latest_cut_off(self, names) -> float | None:
        """The latest live cut-off among ``names``, if any (what a credential concerning all
        of them must have been issued after)."""
        return max((cut for cut in map(self.cut_off_at, names) if cut is not None), default=None)


class SubscribedRevocationList(StoreRevocationList):
    """Knows the revocations of every process (Redis publish/subscribe), once listening."""

    def __init__(self, store, clock, heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        super().__init__(store, clock)
        self.heartbeat_seconds = heartbeat_seconds
        self._known: dict[str, float] = {}  # jti → when the revocation may be forgotten
        self._cut_offs: dict[str, tuple[float, float]] = {}  # name → (cut-off moment, forget at)
        self._live = threading.Event()
        self._listening_in: int | None = None  # the process whose thread follows the channel
        self._lock = threading.Lock()

    def revoke(self, jti: str, ttl: float) -> None:
        # Stored first, then published: a process that subscribes in between reads it from the list.
        super().revoke(jti, ttl)
        if ttl > 0:
            forget_at = self.clock.time() + ttl + _MARGIN_SECONDS
            self._known[jti] = forget_at
            self.store.publish(_CHANNEL, f"{forget_at} {jti}".encode())

    def is_revoked(self, jti: str) -> bool:
        self.listen()
        forget_at = self._known.get(jti)
        if forget_at is not None and forget_at > self.clock.time():
            return True
        if self._live.is_set():
            return False
        return super().is_revoked(jti)

    def cut_off(self, name: str, at: float, ttl: float) -> None:
        super().cut_off(name, at, ttl)
        if ttl > 0:
            forget_at = self.clock.time() + ttl + _MARGIN_SECONDS
            _note_cut_off(self._cut_offs, name, at, forget_at)
            self.store.publish(_CHANNEL, f"{_CUT_OFF_MESSAGE} {forget_at!r} {at!r} {name}".encode())

    def cut_off_at(self, name: str) -> float | None:
        self.listen()
        known = self._cut_offs.get(name)
        if known is not None and known[1] > self.clock.time():
            return known[0]
        if self._live.is_set():
            return None
        return super().cut_off_at(name)

    def latest_cut_off(self, names) -> float | None:
        # Checked at every use of every credential: while listening, a process that has heard
        # of no cut-off at all answers at once (bench/PROFILE.md round 7).
        self.listen()
        if not self._cut_offs and self._live.is_set():
            return None
        return super().latest_cut_off(names)

    def listen(self) -> None:
        """Start this process's listening thread, once per process (the first use starts it, so
        a server that forks its workers gets one in each)."""
        pid = os.getpid()
        if self._listening_in == pid:
            return
        with self._lock:
            if self._listening_in == pid:
                return
            self._live = threading.Event()  # a forked child is not listening yet
            self._listening_in = pid
            threading.Thread(target=_follow, name="idp-revocations", daemon=True,
                             args=(weakref.ref(self), self.store, self.clock, self._known, self._cut_offs,
                                   self._live, self.heartbeat_seconds)).start()

    def wait_until_listening(self, timeout: float) -> bool:
        self.listen()
        return self._live.wait(timeout)


def _note_cut_off(cut_offs: dict, name: str, at: float, forget_at: float) -> None:
    known = cut_offs.get(name)
    if known is None or known[0] <= at:
        cut_offs[name] = (at, forget_at)


def _read_cut_offs(store, cut_offs: dict) -> None:
    """The cut-offs already stored (few: those of the last token lifetime)."""
    for name, forget_at in store.expiries(_CUT_OFF_KEY).items():
        raw = store.get(_CUT_OFF_KEY + name)
        if raw is not None:
            _note_cut_off(cut_offs, name, float(raw), forget_at)


def _read_lists(store, known: dict, cut_offs: dict) -> None:
    known.update(store.expiries(_KEY))
    _read_cut_offs(store, cut_offs)


def _follow(owner, store, clock, known: dict, cut_offs: dict, live: threading.Event,
            heartbeat: float) -> None:
    """The listening thread: subscribe, read the list, then add what is published. It holds no
    reference to its list, and ends once the list is gone (an application discarded by tests)."""
    subscription = None
    purged_at = clock.time()
    while owner() is not None:
        try:
            if subscription is None:
                subscription = store.subscription(_CHANNEL)
                _read_lists(store, known, cut_offs)
                heard = beaten = time.monotonic()
                live.set()
            if time.monotonic() - beaten >= heartbeat:
                store.publish(_CHANNEL, _HEARTBEAT)
                beaten = time.monotonic()
            message = subscription.get_message(timeout=min(1.0, heartbeat))
            if message is not None:
                heard = time.monotonic()
                if message["type"] == "subscribe":  # redis-py subscribed again on its own
                    _read_lists(store, known, cut_offs)
                elif message["type"] == "message" and message["data"] != _HEARTBEAT:
                    text = message["data"].decode()
                    if text.startswith(_CUT_OFF_MESSAGE + " "):
                        _, forget_at, at, name = text.split(" ", 3)
                        _note_cut_off(cut_offs, name, float(at), float(forget_at))
                    else:
                        forget_at, _, jti = text.partition(" ")
                        known[jti] = float(forget_at)
            elif time.monotonic() - heard > 3 * heartbeat:
                raise ConnectionError("no heartbeat heard on the revocation channel")
            now = clock.time()
            if now - purged_at > _PURGE_EVERY_SECONDS:
                for jti, forget_at in list(known.items()):
                    if forget_at <= now:
                        known.pop(jti, None)
                for name, (_, forget_at) in list(cut_offs.items()):
                    if forget_at <= now:
                        cut_offs.pop(name, None)
                purged_at = now
        except Exception as error:  # Redis gone, restarting or not delivering: ask the store until subscribed anew
            if live.is_set():
                # Redis not answering is an outage, not a bug: one line, no traceback.
                expected = isinstance(error, ConnectionError) or unavailable_dependency(error) is not None
                log.warning("revocation channel lost; asking the store until it is back",
                            exc_info=not expected, extra={"event": "revocation_channel_lost",
                                                          "error": repr(error)[:300]})
            live.clear()
            if subscription is not None:
                try:
                    subscription.close()
                except Exception:  # noqa: S110  # nosec B110  # the connection is being dropped anyway
                    pass
            subscription = None
            time.sleep(_RETRY_SECONDS)
    if subscription is not None:
        subscription.close()


def create_revocation_list(store, clock) -> StoreRevocationList:
    if isinstance(store, RedisStore):
        return SubscribedRevocationList(store, clock)
    return StoreRevocationList(store, clock)
