"""Back-pressure: a token bucket per account for creates (429 past it).

Creates cost one token per task, so a batch of 100 costs what 100 single creates do. The
server's ``create_rate``/``create_burst`` apply unless the account has its own rate
(``dragon accounts create|update --rate N``), whose burst is ``BURST_SECONDS`` of it.
"""

from __future__ import annotations

import time

BURST_SECONDS = 5.0


class TokenBuckets:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, who: str, cost: float = 1.0, rate: float | None = None) -> float:
        """Take ``cost`` tokens; return 0 when allowed, else the seconds to wait.

        ``rate`` (tokens per second) overrides the default rate for this caller; 0 or a
        negative rate means no limit.
        """
        burst = self.burst if rate is None else rate * BURST_SECONDS
        rate = self.rate if rate is None else rate
        if rate <= 0:
            return 0.0
        now = time.monotonic()
        tokens, last = self._buckets.get(who, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens >= cost or (cost > burst and tokens >= burst):
            self._buckets[who] = (tokens - cost, now)
            return 0.0
        self._buckets[who] = (tokens, now)
        return (min(cost, burst) - tokens) / rate
