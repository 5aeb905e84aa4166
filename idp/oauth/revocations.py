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
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref

from idp.store import RedisStore

_KEY = "revoked_jti:"
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


class SubscribedRevocationList(StoreRevocationList):
    """Knows the revocations of every process (Redis publish/subscribe), once listening."""

    def __init__(self, store, clock, heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        super().__init__(store, clock)
        self.heartbeat_seconds = heartbeat_seconds
        self._known: dict[str, float] = {}  # jti → when the revocation may be forgotten
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
                             args=(weakref.ref(self), self.store, self.clock, self._known, self._live,
                                   self.heartbeat_seconds)).start()

    def wait_until_listening(self, timeout: float) -> bool:
        self.listen()
        return self._live.wait(timeout)


def _follow(owner, store, clock, known: dict, live: threading.Event, heartbeat: float) -> None:
    """The listening thread: subscribe, read the list, then add what is published. It holds no
    reference to its list, and ends once the list is gone (an application discarded by tests)."""
    subscription = None
    purged_at = clock.time()
    while owner() is not None:
        try:
            if subscription is None:
                subscription = store.subscription(_CHANNEL)
                known.update(store.expiries(_KEY))
                heard = beaten = time.monotonic()
                live.set()
            if time.monotonic() - beaten >= heartbeat:
                store.publish(_CHANNEL, _HEARTBEAT)
                beaten = time.monotonic()
            message = subscription.get_message(timeout=min(1.0, heartbeat))
            if message is not None:
                heard = time.monotonic()
                if message["type"] == "subscribe":  # redis-py subscribed again on its own
                    known.update(store.expiries(_KEY))
                elif message["type"] == "message" and message["data"] != _HEARTBEAT:
                    forget_at, _, jti = message["data"].decode().partition(" ")
                    known[jti] = float(forget_at)
            elif time.monotonic() - heard > 3 * heartbeat:
                raise ConnectionError("no heartbeat heard on the revocation channel")
            now = clock.time()
            if now - purged_at > _PURGE_EVERY_SECONDS:
                for jti, forget_at in list(known.items()):
                    if forget_at <= now:
                        known.pop(jti, None)
                purged_at = now
        except Exception:  # Redis gone, restarting or not delivering: ask the store until subscribed anew
            if live.is_set():
                log.warning("revocation channel lost; asking the store until it is back", exc_info=True)
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
