"""Failure counters over a window, kept in the ephemeral store.

They count failures (wrong passwords, wrong codes, sends), never successful requests, and
refuse at once with the time the caller may try again, never by sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass

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
