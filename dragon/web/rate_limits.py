"""Back-pressure: a token bucket per credential for creates (429 past it)."""

from __future__ import annotations

import time


class TokenBuckets:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, who: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; return 0 when allowed, else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        tokens, last = self._buckets.get(who, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= cost or (cost > self.burst and tokens >= self.burst):
            self._buckets[who] = (tokens - cost, now)
            return 0.0
        self._buckets[who] = (tokens, now)
        return (min(cost, self.burst) - tokens) / self.rate
