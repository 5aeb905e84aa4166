"""Revoked access tokens (idp.oauth.revocations): asked of the in-process store, or known to every
process through Redis publish/subscribe, with the store asked whenever a process is not
listening. Each list below on its own RedisStore stands for one server process.

Delivery between processes is asynchronous, so these tests wait for it (``eventually``, at
most a few seconds); expiry is moved by the injected clock, never waited for.
"""

from __future__ import annotations

import gc
import os
import threading
import time

import pytest

from idp.clock import FrozenClock
from idp.oauth.revocations import StoreRevocationList, SubscribedRevocationList, create_revocation_list
from idp.store import MemoryStore, RedisStore
from tests.unit.test_store import REDIS_URL

TOKEN_LIFETIME = 3600


def eventually(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(start=1_700_000_000.0)


@pytest.fixture
def process(clock):
    """Makes the list of one more server process; all share one Redis prefix."""
    import redis

    prefix = f"idp-test-revocations-{os.getpid()}:"
    made: list[RedisStore] = []

    def make(name: str = "", **options) -> SubscribedRevocationList:
        store = RedisStore(REDIS_URL, clock, prefix=prefix)
        if name:  # so that a test can cut this process's connections
            store.redis.connection_pool.connection_kwargs["client_name"] = f"{name}-{os.getpid()}"
        made.append(store)
        return SubscribedRevocationList(store, clock, **options) if options else create_revocation_list(store, clock)

    probe = RedisStore(REDIS_URL, clock, prefix=prefix)
    try:
        probe.redis.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {exc}")
    probe.clear()
    yield make
    probe.clear()


def stored_mark(lst, jti: str) -> bytes | None:
    return lst.store.get("revoked_jti:" + jti)


def test_with_the_in_process_store_the_store_is_asked(clock):
    revocations = create_revocation_list(MemoryStore(clock), clock)
    assert type(revocations) is StoreRevocationList
    revocations.revoke("a", TOKEN_LIFETIME)
    revocations.revoke("expired-already", 0)
    assert revocations.is_revoked("a") and not revocations.is_revoked("b")
    assert not revocations.is_revoked("expired-already")
    clock.advance(TOKEN_LIFETIME + 61)
    assert not revocations.is_revoked("a")


def test_a_revocation_in_one_process_reaches_the_others_which_then_need_no_round_trip(process):
    first, second = process(), process()
    assert second.wait_until_listening(5)
    first.revoke("jti-1", TOKEN_LIFETIME)
    assert first.is_revoked("jti-1")  # at once where it happened
    assert eventually(lambda: second.is_revoked("jti-1"))
    second.store.delete("revoked_jti:jti-1")  # from now on only the process's own memory knows
    assert second.is_revoked("jti-1")
    assert not second.is_revoked("jti-never-revoked")


def test_a_process_that_starts_later_reads_what_was_revoked_before(process):
    first = process()
    first.revoke("before", TOKEN_LIFETIME)
    later = process()
    assert later.is_revoked("before")  # not listening yet: the store is asked
    assert later.wait_until_listening(5)
    later.store.delete("revoked_jti:before")
    assert later.is_revoked("before")  # read from the list when it subscribed


def test_while_its_connection_is_lost_a_process_asks_the_store_and_reads_the_list_again(process):
    first, second = process(), process("idp-revocations-cut")
    assert second.wait_until_listening(5)
    admin = first.store.redis
    cut = [c["id"] for c in admin.client_list(_type="pubsub") if c["name"].startswith("idp-revocations-cut")]
    assert cut
    for client_id in cut:
        admin.client_kill_filter(_id=client_id)
    assert eventually(lambda: not second._live.is_set())
    first.revoke("during", TOKEN_LIFETIME)  # published while nobody in the second process listens
    assert second.is_revoked("during")  # asked of the store
    assert second.wait_until_listening(10)
    second.store.delete("revoked_jti:during")
    assert second.is_revoked("during")  # read again on reconnection


def test_a_listening_process_hears_its_heartbeats_and_stays_subscribed(process):
    revocations = process(heartbeat_seconds=0.25)  # given up after 0.75 s without a message
    assert revocations.wait_until_listening(5)
    deadline = time.monotonic() + 2.0  # eight heartbeats
    while time.monotonic() < deadline:
        assert revocations._live.is_set()
        time.sleep(0.01)


def test_a_revocation_is_forgotten_once_its_token_has_expired(process, clock):
    first, second = process(), process()
    assert second.wait_until_listening(5)
    first.revoke("short", 30)
    assert eventually(lambda: second.is_revoked("short"))
    clock.advance(30 + 61)
    assert stored_mark(first, "short") is None
    assert eventually(lambda: not second.is_revoked("short") and not first.is_revoked("short"))


def test_the_listening_thread_ends_with_its_list(process):
    def listeners() -> set:
        return {t for t in threading.enumerate() if t.name == "idp-revocations" and t.is_alive()}

    before = listeners()  # other applications' threads may come and go meanwhile
    revocations = process()
    assert revocations.wait_until_listening(5)
    (own,) = listeners() - before
    del revocations
    gc.collect()
    own.join(timeout=5)
    assert not own.is_alive()
