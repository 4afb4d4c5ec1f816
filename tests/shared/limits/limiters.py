"""Opening either limiter for the behaviour suite and its child process, on a test clock.

A :class:`LimiterTarget` names one limiter (local, or a Redis URL plus a key prefix) so the
test process and ``limits_child.py`` count under the very same keys. :class:`StepClock` is
the injected clock: it moves only when a test moves it, so no test depends on real time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.limits import Limiter, LocalLimiter
from shared.limits.redis_limiter import RedisLimiter


def utc(*args: int) -> float:
    """Epoch seconds of a UTC date and time (``utc(2024, 12, 31, 23, 59, 59)``)."""
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


@dataclass
class StepClock:
    """A clock that stands still until :meth:`advance` (epoch seconds)."""

    now: float = field(default_factory=lambda: utc(2024, 6, 12, 10, 30, 0))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


@dataclass(frozen=True)
class LimiterTarget:
    """Where a limiter counts: in process, or in Redis at ``url`` under ``prefix``."""

    kind: str
    url: str = ""
    prefix: str = ""

    def open(self, clock: StepClock) -> Limiter:
        """A new limiter on ``clock``."""
        if self.kind == "local":
            return LocalLimiter(clock, self.prefix)
        return RedisLimiter(self.url, key_prefix=self.prefix, timeout=5.0, clock=clock)
