"""What a check does when Redis fails: decide it in process (fail-open) or refuse (closed).

:class:`GuardedLimiter` wraps the configured limiter, times every check through the sensor,
and on :class:`~shared.errors.LimiterUnavailable` either asks its in-process fallback
(``limits.on_redis_failure = "open"``: mail keeps flowing, each replica enforcing its
``fallback_share`` alone) or lets the error through (``"closed"``: ingest answers 451 and
the client retries, so no limit is ever exceeded). Both are counted and logged; the log
handler already limits a repeated warning to a burst, then one line per interval.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

from shared.errors import LimiterUnavailable
from shared.limits.local import LocalLimiter
from shared.limits.metrics import LimitsSensor
from shared.limits.rules import Limiter, Rule, Verdict

log = logging.getLogger(__name__)


class GuardedLimiter:
    """``primary`` (named ``backend`` in metrics) with a fallback, or none (fail-closed)."""

    def __init__(
        self,
        primary: Limiter,
        backend: str,
        sensor: LimitsSensor,
        fallback: LocalLimiter | None = None,
    ) -> None:
        self._primary = primary
        self._backend = backend
        self._sensor = sensor
        self._fallback = fallback

    async def acquire(self, key: str, rules: Sequence[Rule], cost: int = 1) -> Verdict:
        """See :meth:`shared.limits.rules.Limiter.acquire`; fail-closed raises
        ``LimiterUnavailable``."""
        started = time.perf_counter()
        try:
            verdict = await self._primary.acquire(key, rules, cost)
        except LimiterUnavailable as exc:
            if self._fallback is None:
                self._sensor.redis_failed("refused")
                log.warning("limits: %s; refusing the check (on_redis_failure=closed)", exc)
                raise
            self._sensor.redis_failed("local")
            log.warning("limits: %s; deciding in this process (on_redis_failure=open)", exc)
            started = time.perf_counter()
            verdict = dataclasses.replace(self._fallback.acquire_now(key, rules, cost), local=True)
            self._sensor.checked("local", time.perf_counter() - started)
            return verdict
        self._sensor.checked(self._backend, time.perf_counter() - started)
        return verdict

    async def used(self, key: str, rules: Sequence[Rule]) -> dict[str, int]:
        """The primary's counts (no fallback: a count from one process would mislead)."""
        return await self._primary.used(key, rules)

    @property
    def backend(self) -> str:
        """``local`` or ``redis``."""
        return self._backend

    async def close(self) -> None:
        """Close the primary (and forget the fallback's counters)."""
        await self._primary.close()
        if self._fallback is not None:
            await self._fallback.close()
