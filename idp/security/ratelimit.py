"""Failure counters over a window, kept in the ephemeral store.

They count failures (wrong passwords, wrong codes, sends), never successful requests, and
refuse at once with the time the caller may try again, never by sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from idp.extensions import services


@dataclass(frozen=True)
class Limit:
    name: str
    maximum: int
    window: int  # seconds, from the first counted event

    def _key(self, ident: str) -> str:
        return f"rl:{self.name}:{ident}"

    def hit(self, ident: str) -> int:
        return services().store.incr(self._key(ident), self.window)

    def exceeded(self, ident: str) -> bool:
        return services().store.count(self._key(ident)) >= self.maximum

    def retry_after(self, ident: str) -> int:
        left = services().store.ttl(self._key(ident))
        return int(left) + 1 if left else 0

    def reset(self, ident: str) -> None:
        services().store.delete(self._key(ident))


@dataclass(frozen=True)
class Lockout:
    """Failures of one identity (an account, a staff member, or a login name that matches
    nobody); at ``counter.maximum`` failures within its window the identity is locked for
    ``seconds``. The lock is kept as ``lock:<kind>:<ident>`` holding the Unix time it ends."""

    counter: Limit
    kind: str
    seconds: int

    @classmethod
    def for_sign_in(cls, counter_name: str, kind: str, config) -> Lockout:
        """The sign-in thresholds, one rule for citizens and staff alike: ``LOGIN_MAX_FAILURES``
        within ``LOGIN_FAILURE_WINDOW`` lock for ``LOGIN_LOCK_SECONDS``."""
        return cls(Limit(counter_name, config["LOGIN_MAX_FAILURES"], config["LOGIN_FAILURE_WINDOW"]),
                   kind, config["LOGIN_LOCK_SECONDS"])

    def lock_key(self, ident: str) -> str:
        return f"lock:{self.kind}:{ident}"

    def locked_until(self, ident: str) -> datetime | None:
        raw = services().store.get(self.lock_key(ident))
        return datetime.fromtimestamp(float(raw), tz=timezone.utc) if raw else None

    def fail(self, ident: str) -> datetime | None:
        """Count a failure; the end of the lock when this failure set one, else None."""
        if self.counter.hit(ident) < self.counter.maximum:
            return None
        return self.lock(ident, self.seconds)

    def lock(self, ident: str, seconds: int) -> datetime:
        until = services().clock.time() + seconds
        services().store.set(self.lock_key(ident), str(until).encode(), seconds)
        self.counter.reset(ident)
        return datetime.fromtimestamp(until, tz=timezone.utc)

    def clear_failures(self, ident: str) -> None:
        self.counter.reset(ident)

    def unlock(self, ident: str) -> None:
        services().store.delete(self.lock_key(ident))
        self.counter.reset(ident)
