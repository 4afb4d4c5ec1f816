"""LocalLimiter: the limits in this process, for the embedded bus and as Redis's fallback.

Same rules, same arithmetic (:mod:`shared.limits.algorithm`) and same keys as the Redis
limiter, in a dict. asyncio runs one ``acquire`` at a time to completion (it never awaits),
so a check is atomic without a lock. Expired entries are swept every few thousand checks, so
the dict holds only keys that are still counting.

It knows nothing of other processes: with N replicas each one allows the whole limit (see
``limits.fallback_share`` for the fail-open case).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from shared.limits.algorithm import decide, plan, ttl_ms
from shared.limits.rules import ALLOWED, Clock, Rule, Verdict, check_rules

#: Checks between two sweeps of expired entries (a sweep is O(keys)).
SWEEP_EVERY = 4096


class LocalLimiter:
    """In-process counters; ``share`` scales every limit (fail-open fallback)."""

    def __init__(self, clock: Clock = time.time, key_prefix: str = "", share: float = 1.0) -> None:
        self._clock = clock
        self._prefix = key_prefix
        self._share = share
        self._entries: dict[str, tuple[float, float]] = {}  # key -> (value, expires at, ms)
        self._checks = 0

    async def acquire(self, key: str, rules: Sequence[Rule], cost: int = 1) -> Verdict:
        """See :meth:`shared.limits.rules.Limiter.acquire`."""
        return self.acquire_now(key, rules, cost)

    def acquire_now(self, key: str, rules: Sequence[Rule], cost: int = 1) -> Verdict:
        """The check itself, synchronous (the fallback path calls it from an except block)."""
        check_rules(rules, cost)
        if not rules:
            return ALLOWED
        scaled = [rule.scaled(self._share) for rule in rules]
        now = self._clock()
        now_ms = now * 1000.0
        self._checks += 1
        if self._checks % SWEEP_EVERY == 0:
            self._sweep(now_ms)
        steps = plan(self._prefix, key, scaled, now)
        stored = [self._get(step.key, now_ms) for step in steps]
        decision = decide(stored, steps, now_ms, cost)
        if decision.refused >= 0:
            return Verdict.refused(scaled[decision.refused], now, decision.wait_ms / 1000.0)
        for step, value in zip(steps, decision.values, strict=True):
            self._entries[step.key] = (value, now_ms + ttl_ms(step, value, now_ms))
        return ALLOWED

    async def used(self, key: str, rules: Sequence[Rule]) -> dict[str, int]:
        """See :meth:`shared.limits.rules.Limiter.used`."""
        now = self._clock()
        steps = plan(self._prefix, key, [r for r in rules if r.kind == "quota"], now)
        return {s.rule.name: int(self._get(s.key, now * 1000.0) or 0) for s in steps}

    def _get(self, key: str, now_ms: float) -> float | None:
        entry = self._entries.get(key)
        if entry is None or entry[1] <= now_ms:
            return None
        return entry[0]

    def _sweep(self, now_ms: float) -> None:
        expired = [key for key, (_, until) in self._entries.items() if until <= now_ms]
        for key in expired:
            del self._entries[key]

    def __len__(self) -> int:
        """Keys held (expired ones until the next sweep): for tests and the benchmark."""
        return len(self._entries)

    async def close(self) -> None:
        """Nothing to release; forget every counter."""
        self._entries.clear()
