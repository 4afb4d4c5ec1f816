"""Token buckets for message rates per user and per client address, and an AUTH failure log.

State is per process and in memory: with several ingest replicas each enforces its share,
which is how Postfix's anvil and Haraka's rate limits behave too. Idle buckets are pruned so
memory stays bounded by the number of recently active keys. This module does not know SMTP;
``policy/mail_from.py`` and ``auth.py`` turn its answers into replies.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]

#: Prune idle entries once the table holds this many keys.
_PRUNE_AT = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One token bucket per key: ``rate`` tokens per second, at most ``burst`` stored."""

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        """A rate of 0 means unlimited."""
        return self.rate > 0

    def take(self, key: str, tokens: float = 1.0) -> bool:
        """Take ``tokens`` from ``key``'s bucket; ``False`` (nothing taken) when too few."""
        if not self.enabled:
            return True
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _PRUNE_AT:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens < tokens:
            return False
        bucket.tokens -= tokens
        return True

    def _prune(self, now: float) -> None:
        full = self.burst / self.rate
        for key in [k for k, b in self._buckets.items() if now - b.updated >= full]:
            del self._buckets[key]


class FailureLog:
    """Counts failures per key in a sliding window (AUTH brute-force throttling)."""

    def __init__(self, limit: int, window: float, clock: Clock = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self._clock()
        times = self._failures.get(key)
        if times is None:
            if len(self._failures) >= _PRUNE_AT:
                self._prune(now)
            times = self._failures[key] = deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        return times

    def blocked(self, key: str) -> bool:
        """Whether ``key`` reached the limit within the window."""
        return len(self._recent(key)) >= self.limit

    def fail(self, key: str) -> bool:
        """Record a failure; ``True`` when ``key`` is now blocked."""
        times = self._recent(key)
        times.append(self._clock())
        return len(times) >= self.limit

    def forget(self, key: str) -> None:
        """Drop ``key``'s failures (a success, or an operator's unblock)."""
        self._failures.pop(key, None)

    def forget_where(self, match: Callable[[str], bool]) -> None:
        """Drop the failures of every key ``match`` accepts."""
        for key in [k for k in self._failures if match(k)]:
            del self._failures[key]

    def _prune(self, now: float) -> None:
        for key in [k for k, t in self._failures.items() if not t or now - t[-1] >= self.window]:
            del self._failures[key]
