"""The provider's notion of "now": injectable so tests move time instead of sleeping."""

from __future__ import annotations

import time
from datetime import datetime, timezone


class SystemClock:
    def time(self) -> float:
        return time.time()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=timezone.utc)


class FrozenClock(SystemClock):
    """A clock that only moves when told to (tests, benchmarks of expiry paths)."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
