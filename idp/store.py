"""The ephemeral store: server-side sessions, captchas, codes, rate-limit counters, lockouts.

One interface, two implementations: Redis for every real deployment and an in-process
dictionary for the embedded defaults (single process only). Expiry is judged against the
application's clock rather than the server's, so tests move time instead of sleeping; Redis
still gets a real TTL as a backstop so nothing outlives its purpose by much.
"""

from __future__ import annotations

import threading
from typing import Protocol

from idp.clock import SystemClock

# Real seconds added to Redis TTLs beyond the logical expiry: room for an injected clock
# that runs behind, while forgotten keys still disappear.
_BACKSTOP_SECONDS = 3600


class EphemeralStore(Protocol):
    """Short-lived keyed values. Every write names a lifetime in seconds."""

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl: float) -> None: ...

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Set only if absent (or expired); True when this call set it."""

    def pop(self, key: str) -> bytes | None:
        """Get and delete atomically: the basis of every single-use secret."""

    def delete(self, key: str) -> None: ...

    def incr(self, key: str, ttl: float) -> int:
        """Add one to a counter; a new counter lives ``ttl`` seconds from its first hit."""

    def count(self, key: str) -> int: ...

    def ttl(self, key: str) -> float | None:
        """Seconds left, or None when absent."""


class MemoryStore:
    """In-process store for the embedded defaults and single-process development."""

    def __init__(self, clock: SystemClock | None = None) -> None:
        self.clock = clock or SystemClock()
        self._data: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()
        self._writes = 0

    def _live(self, key: str):
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock.time():
            del self._data[key]
            return None
        return entry

    def _put(self, key: str, value: object, ttl: float) -> None:
        self._data[key] = (self.clock.time() + ttl, value)
        self._writes += 1
        if self._writes % 1000 == 0:
            now = self.clock.time()
            for stale in [k for k, (exp, _) in self._data.items() if exp <= now]:
                del self._data[stale]

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._live(key)
            return entry[1] if entry and isinstance(entry[1], bytes) else None

    def set(self, key: str, value: bytes, ttl: float) -> None:
        with self._lock:
            self._put(key, bytes(value), ttl)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._put(key, bytes(value), ttl)
            return True

    def pop(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._live(key)
            self._data.pop(key, None)
            return entry[1] if entry and isinstance(entry[1], bytes) else None

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def incr(self, key: str, ttl: float) -> int:
        with self._lock:
            entry = self._live(key)
            if entry is None:
                self._put(key, 1, ttl)
                return 1
            value = int(entry[1]) + 1
            self._data[key] = (entry[0], value)
            return value

    def count(self, key: str) -> int:
        with self._lock:
            entry = self._live(key)
            return int(entry[1]) if entry and isinstance(entry[1], int) else 0

    def ttl(self, key: str) -> float | None:
        with self._lock:
            entry = self._live(key)
            return None if entry is None else entry[0] - self.clock.time()


# Values live in a hash {v: value, e: logical expiry}; scripts keep check-and-set atomic.
_ADD = """
local e = tonumber(redis.call('HGET', KEYS[1], 'e') or '0')
if e > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'e', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""
_POP = """
local r = redis.call('HMGET', KEYS[1], 'v', 'e')
redis.call('DEL', KEYS[1])
return r
"""
_INCR = """
local e = tonumber(redis.call('HGET', KEYS[1], 'e') or '0')
if e <= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'c', 0, 'e', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return redis.call('HINCRBY', KEYS[1], 'c', 1)
"""


class RedisStore:
    """Redis-backed store shared by every worker and every provider instance."""

    def __init__(self, url: str, clock: SystemClock | None = None, prefix: str = "idp:",
                 sentinels: list[tuple[str, int]] | None = None, service: str = "mymaster") -> None:
        self.clock = clock or SystemClock()
        self.prefix = prefix
        self.redis = _client(url, sentinels, service)
        self._add = self.redis.register_script(_ADD)
        self._pop = self.redis.register_script(_POP)
        self._incr = self.redis.register_script(_INCR)

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _real_ttl(self, ttl: float) -> int:
        return int(ttl) + 1 + _BACKSTOP_SECONDS

    def _fresh(self, value, expiry) -> bytes | None:
        if value is None or expiry is None or float(expiry) <= self.clock.time():
            return None
        return bytes(value)

    def get(self, key: str) -> bytes | None:
        value, expiry = self.redis.hmget(self._k(key), "v", "e")
        return self._fresh(value, expiry)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        pipe = self.redis.pipeline()
        pipe.delete(self._k(key))
        pipe.hset(self._k(key), mapping={"v": value, "e": self.clock.time() + ttl})
        pipe.expire(self._k(key), self._real_ttl(ttl))
        pipe.execute()

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        now = self.clock.time()
        done = self._add(keys=[self._k(key)], args=[now, value, now + ttl, self._real_ttl(ttl)])
        return bool(done)

    def pop(self, key: str) -> bytes | None:
        value, expiry = self._pop(keys=[self._k(key)])
        return self._fresh(value, expiry)

    def delete(self, key: str) -> None:
        self.redis.delete(self._k(key))

    def clear(self) -> None:
        """Delete every key under this store's prefix (tests, and a reset of a test stack)."""
        keys = list(self.redis.scan_iter(match=self.prefix + "*", count=1000))
        if keys:
            self.redis.delete(*keys)

    def incr(self, key: str, ttl: float) -> int:
        now = self.clock.time()
        return int(self._incr(keys=[self._k(key)], args=[now, now + ttl, self._real_ttl(ttl)]))

    def count(self, key: str) -> int:
        count, expiry = self.redis.hmget(self._k(key), "c", "e")
        if count is None or expiry is None or float(expiry) <= self.clock.time():
            return 0
        return int(count)

    def ttl(self, key: str) -> float | None:
        expiry = self.redis.hget(self._k(key), "e")
        if expiry is None:
            return None
        left = float(expiry) - self.clock.time()
        return left if left > 0 else None

    # Publish and subscribe, for what every process must learn at once (idp.oauth.revocations).

    def publish(self, channel: str, message: bytes) -> None:
        self.redis.publish(self._k(channel), message)

    def subscription(self, channel: str):
        """A redis-py PubSub on ``channel``, returned once Redis has confirmed the subscription:
        whatever is published from then on reaches it."""
        subscription = _Subscription(self.redis.connection_pool)
        try:
            subscription.subscribe(self._k(channel))
            while True:
                message = subscription.get_message(timeout=5)
                if message is None:
                    raise TimeoutError("Redis did not confirm the subscription")
                if message["type"] == "subscribe":
                    return subscription
        except BaseException:
            subscription.close()
            raise

    def expiries(self, key_prefix: str) -> dict[str, float]:
        """Every live key under ``key_prefix``, without it, with its logical expiry."""
        names = list(self.redis.scan_iter(match=self._k(key_prefix) + "*", count=1000))
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hget(name, "e")
        now, start = self.clock.time(), len(self._k(key_prefix))
        return {name[start:].decode(): float(expiry) for name, expiry in zip(names, pipe.execute())
                if expiry is not None and float(expiry) > now}


# Redis unreachable: a command is tried again twice, 50 then 100 ms later, then fails, so that a
# request answers "temporarily unavailable" within a fraction of a second instead of redis-py's
# default of three tries over seconds; a failover's moment without a master is mostly covered.
_RETRIES = 2
_CONNECT_TIMEOUT = 2


def _client(url: str, sentinels: list[tuple[str, int]] | None, service: str):
    """A redis-py client on ``url``, or, with ``sentinels``, on the master the Sentinels name for
    ``service``: each new connection asks them, and a connection to a master that has become a
    replica (a failover) is dropped, so the next command goes to the new master."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.connection import parse_url
    from redis.retry import Retry

    options = dict(socket_timeout=5, socket_connect_timeout=_CONNECT_TIMEOUT, health_check_interval=30,
                   retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), _RETRIES),
                   retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError])
    if not sentinels:
        return redis.Redis.from_url(url, **options)
    from redis.sentinel import Sentinel

    parsed = parse_url(url)
    credentials = {k: parsed[k] for k in ("username", "password") if parsed.get(k)}
    if url.startswith("rediss://"):
        credentials["ssl"] = True
    sentinel = Sentinel(sentinels, socket_timeout=1, socket_connect_timeout=1)
    return sentinel.master_for(service, db=int(parsed.get("db") or 0), **credentials, **options)


def _subscription_class():
    from redis.backoff import NoBackoff
    from redis.client import PubSub
    from redis.retry import Retry

    class Subscription(PubSub):
        """A subscription whose connection never retries: a lost subscription must show at once
        (its follower then asks the store until it has subscribed again and re-read what it
        missed). The connection goes back to the pool with the pool's retries."""

        def execute_command(self, *args):
            first = self.connection is None
            super().execute_command(*args)
            if first and self.connection is not None:
                self._pool_retry = self.connection.retry
                self.connection.retry = Retry(NoBackoff(), 0)

        def reset(self):
            if self.connection is not None and hasattr(self, "_pool_retry"):
                self.connection.retry = self._pool_retry
            super().reset()

    return Subscription


def _Subscription(pool):
    global _SUBSCRIPTION
    if _SUBSCRIPTION is None:
        _SUBSCRIPTION = _subscription_class()
    return _SUBSCRIPTION(pool)


_SUBSCRIPTION = None


def create_store(url: str, clock: SystemClock | None = None, prefix: str = "idp:",
                 sentinels: list[tuple[str, int]] | None = None, service: str = "mymaster") -> EphemeralStore:
    if url.startswith("memory://"):
        return MemoryStore(clock)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url, clock, prefix, sentinels, service)
    raise ValueError(f"unsupported IDP_REDIS_URL {url!r}")
