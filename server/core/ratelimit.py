"""Rate limits: a keyed token bucket, in process memory.

Used for chat (per participant) and for password attempts (per account and per
address, with growing delays). A bucket holds ``burst`` tokens and refills at
``rate`` per second; ``take`` spends one or raises ``rate_limited`` with the
seconds until the next token. Buckets that are full again are dropped, so memory
follows the number of *active* keys only. Written here because the limiter needs
the clock of the caller's choice and the project's own error vocabulary; it is
twenty lines, not a dependency.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from server.core.errors import rate_limited


class TokenBucket:
    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        message: str = "Too many requests; try again shortly.",
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.message = message
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)

    def _level(self, key: Hashable, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate)

    def take(self, key: Hashable, cost: float = 1.0) -> None:
        now = self.clock()
        tokens = self._level(key, now)
        if tokens < cost:
            raise rate_limited((cost - tokens) / self.rate, self.message)
        self._buckets[key] = (tokens - cost, now)
        if len(self._buckets) > 10_000:
            self.prune()

    def refund(self, key: Hashable, cost: float = 1.0) -> None:
        """Give back what ``take`` spent (the request turned out to cost nothing)."""
        if key in self._buckets:
            tokens, at = self._buckets[key]
            self._buckets[key] = (min(self.burst, tokens + cost), at)

    def prune(self) -> None:
        now = self.clock()
        for key in [k for k in self._buckets if self._level(k, now) >= self.burst]:
            del self._buckets[key]
