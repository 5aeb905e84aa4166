"""The ephemeral store contract, run against both implementations with a frozen clock.

Expiry is judged by the injected clock, so every test moves time instead of sleeping. The
Redis variant uses ``IDP_TEST_REDIS_URL`` (default database 15 on the loopback server) and is
skipped only when no Redis server answers there.
"""

from __future__ import annotations

import os
import threading

import pytest

from idp.clock import FrozenClock
from idp.store import MemoryStore, RedisStore, create_store

REDIS_URL = os.environ.get("IDP_TEST_REDIS_URL") or "redis://127.0.0.1:6379/15"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(start=1_700_000_000.0)


@pytest.fixture
def redis_store(clock):
    import redis

    # Its own prefix (per process: parallel runs share the server): clear() deletes only the
    # keys under it, never the rest of the database (other runs, other applications).
    store = RedisStore(REDIS_URL, clock, prefix=f"idp-test-store-{os.getpid()}:")
    try:
        store.redis.ping()
    except redis.exceptions.ConnectionError as exc:  # includes timeouts
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {exc}")
    store.clear()
    yield store
    store.clear()
    store.redis.close()


@pytest.fixture(params=["memory", "redis"])
def store(request, clock):
    if request.param == "memory":
        return MemoryStore(clock)
    return request.getfixturevalue("redis_store")


# --- get / set / delete -----------------------------------------------------------------


def test_get_returns_what_set_stored(store):
    store.set("k", b"value", 60)
    assert store.get("k") == b"value"


def test_get_of_an_absent_key_is_none(store):
    assert store.get("never-written") is None


def test_set_replaces_the_value_and_the_lifetime(store, clock):
    store.set("k", b"first", 10)
    store.set("k", b"second", 100)
    assert store.get("k") == b"second"
    clock.advance(50)
    assert store.get("k") == b"second"


def test_values_are_bytes_and_survive_binary_content(store):
    payload = bytes(range(256)) + "会话".encode()
    store.set("bin", payload, 60)
    assert store.get("bin") == payload


def test_a_value_expires_when_the_clock_passes_its_lifetime(store, clock):
    store.set("k", b"v", 60)
    clock.advance(59)
    assert store.get("k") == b"v"
    clock.advance(1)
    assert store.get("k") is None


def test_delete_removes_a_key(store):
    store.set("k", b"v", 60)
    store.delete("k")
    assert store.get("k") is None
    assert store.ttl("k") is None


def test_delete_of_an_absent_key_is_harmless(store):
    store.delete("nothing-here")
    assert store.get("nothing-here") is None


def test_keys_are_independent(store):
    store.set("a", b"1", 60)
    store.set("b", b"2", 60)
    store.delete("a")
    assert store.get("a") is None
    assert store.get("b") == b"2"


# --- add ---------------------------------------------------------------------------------


def test_add_sets_only_when_absent(store):
    assert store.add("k", b"first", 60) is True
    assert store.add("k", b"second", 60) is False
    assert store.get("k") == b"first"


def test_add_does_not_extend_the_existing_lifetime(store, clock):
    store.add("k", b"first", 60)
    clock.advance(30)
    assert store.add("k", b"second", 60) is False
    clock.advance(30)
    assert store.get("k") is None


def test_add_succeeds_again_after_the_key_expired(store, clock):
    assert store.add("k", b"first", 60) is True
    clock.advance(61)
    assert store.add("k", b"second", 60) is True
    assert store.get("k") == b"second"


def test_add_succeeds_again_after_the_key_was_deleted(store):
    assert store.add("k", b"first", 60) is True
    store.delete("k")
    assert store.add("k", b"second", 60) is True


def test_add_over_a_value_written_by_set_is_refused(store):
    store.set("k", b"by-set", 60)
    assert store.add("k", b"by-add", 60) is False
    assert store.get("k") == b"by-set"


# --- pop ---------------------------------------------------------------------------------


def test_pop_returns_the_value_once(store):
    store.set("code", b"123456", 60)
    assert store.pop("code") == b"123456"
    assert store.pop("code") is None
    assert store.get("code") is None


def test_pop_of_an_expired_value_returns_nothing(store, clock):
    store.set("code", b"123456", 60)
    clock.advance(60)
    assert store.pop("code") is None
    assert store.get("code") is None


def test_pop_of_an_absent_key_is_none(store):
    assert store.pop("absent") is None


def test_two_threads_popping_the_same_key_exactly_one_gets_it(store):
    for round_ in range(30):
        key = f"single-use:{round_}"
        store.set(key, b"secret", 60)
        barrier = threading.Barrier(2)
        results: list[bytes | None] = []
        errors: list[BaseException] = []

        def worker():
            try:
                barrier.wait(timeout=5)
                results.append(store.pop(key))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert not errors
        assert sorted(results, key=lambda r: r is None) == [b"secret", None], (round_, results)


def test_many_threads_popping_the_same_key_exactly_one_gets_it(store):
    store.set("many", b"secret", 60)
    barrier = threading.Barrier(8)
    results: list[bytes | None] = []
    lock = threading.Lock()

    def worker():
        barrier.wait(timeout=5)
        value = store.pop("many")
        with lock:
            results.append(value)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == 8
    assert results.count(b"secret") == 1
    assert results.count(None) == 7


# --- incr / count ------------------------------------------------------------------------


def test_incr_counts_from_the_first_hit(store):
    assert store.incr("failures", 900) == 1
    assert store.incr("failures", 900) == 2
    assert store.incr("failures", 900) == 3
    assert store.count("failures") == 3


def test_incr_window_runs_from_the_first_hit_not_the_last(store, clock):
    store.incr("failures", 100)
    clock.advance(60)
    store.incr("failures", 100)
    clock.advance(39)
    assert store.count("failures") == 2
    clock.advance(1)  # 100 s after the first hit, although only 40 s after the second
    assert store.count("failures") == 0


def test_incr_restarts_at_one_after_its_window(store, clock):
    for _ in range(4):
        store.incr("failures", 100)
    clock.advance(101)
    assert store.incr("failures", 100) == 1
    assert store.count("failures") == 1


def test_a_restarted_counter_gets_a_new_window(store, clock):
    store.incr("failures", 100)
    clock.advance(101)
    store.incr("failures", 100)
    assert store.ttl("failures") == pytest.approx(100)
    clock.advance(99)
    assert store.count("failures") == 1


def test_count_of_an_absent_counter_is_zero(store):
    assert store.count("nobody") == 0


def test_counters_are_independent(store):
    store.incr("a", 60)
    store.incr("a", 60)
    store.incr("b", 60)
    assert store.count("a") == 2
    assert store.count("b") == 1


def test_delete_resets_a_counter(store):
    store.incr("failures", 60)
    store.incr("failures", 60)
    store.delete("failures")
    assert store.count("failures") == 0
    assert store.incr("failures", 60) == 1


def test_concurrent_incr_loses_no_hits(store):
    barrier = threading.Barrier(4)

    def worker():
        barrier.wait(timeout=5)
        for _ in range(25):
            store.incr("hits", 60)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert store.count("hits") == 100


# --- ttl ---------------------------------------------------------------------------------


def test_ttl_reports_the_seconds_left(store, clock):
    store.set("k", b"v", 60)
    assert store.ttl("k") == pytest.approx(60)
    clock.advance(20)
    assert store.ttl("k") == pytest.approx(40)


def test_ttl_of_an_absent_key_is_none(store):
    assert store.ttl("absent") is None


def test_ttl_of_an_expired_key_is_none(store, clock):
    store.set("k", b"v", 60)
    clock.advance(60)
    assert store.ttl("k") is None


def test_ttl_of_a_counter_follows_its_window(store, clock):
    store.incr("c", 300)
    clock.advance(100)
    store.incr("c", 300)
    assert store.ttl("c") == pytest.approx(200)


def test_redis_keeps_a_real_expiry_as_a_backstop(redis_store):
    store = redis_store
    store.set("k", b"v", 60)
    store.incr("c", 60)
    store.add("a", b"v", 60)
    for key in ("k", "c", "a"):
        assert store.redis.ttl(store._k(key)) > 0, key


# --- construction ------------------------------------------------------------------------


def test_create_store_picks_the_implementation_from_the_url(clock):
    assert isinstance(create_store("memory://", clock), MemoryStore)
    assert isinstance(create_store(REDIS_URL, clock), RedisStore)  # no connection is made
    with pytest.raises(ValueError):
        create_store("memcached://127.0.0.1", clock)


def test_redis_clear_deletes_only_the_keys_under_the_stores_prefix(redis_store):
    outsider = f"not-idp-{os.getpid()}"
    try:
        redis_store.set("mine", b"1", 60)
        redis_store.incr("counter", 60)
        redis_store.redis.set(outsider, b"someone else's")
        redis_store.clear()
        assert redis_store.get("mine") is None
        assert redis_store.count("counter") == 0
        assert redis_store.redis.get(outsider) == b"someone else's"
    finally:
        redis_store.redis.delete(outsider)
