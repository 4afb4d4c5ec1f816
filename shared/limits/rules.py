"""What a limit check asks and answers: :class:`Rule`, :class:`Verdict`, :class:`Limiter`.

Two kinds of rule, as mail services publish them (SES: "maximum send rate" and "sending
quota"; KumoMTA: throttles and quotas):

- a **rate** with a burst, enforced with GCRA (the generic cell rate algorithm, ITU-T I.371,
  the algorithm of redis-cell and KumoMTA's shared throttles): ``limit`` units per ``period``
  seconds, at most ``burst`` of them at once. It never "resets"; ``retry_after`` is when the
  next unit fits.
- a **quota** per calendar window (UTC hour, day or month): ``limit`` units, counted in a
  fixed window that starts over on the UTC boundary, so a tenant's "per day" is the day its
  reports show.

This module owns the vocabulary and the calendar arithmetic; it does not count anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

#: Epoch seconds now (``time.time`` in production; a fixed or stepped value in tests).
Clock = Callable[[], float]

RuleKind = Literal["rate", "quota"]
Window = Literal["hour", "day", "month"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One limit of a check; build it with :meth:`rate` or :meth:`quota`."""

    name: str  # names the limit in replies, logs and keys ("per_second", "per_day")
    kind: RuleKind
    limit: int  # units per period (rate) or per window (quota)
    period: float = 1.0  # seconds a rate's limit is spread over (rate only)
    burst: int = 1  # units a rate allows at once (rate only)
    window: Window = "day"  # calendar window of a quota (quota only)

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "{}: "):
            raise ValueError(
                f"rule name must be non-empty without braces, colons or spaces: {self.name!r}"
            )
        if self.limit < 1:
            raise ValueError(f"rule {self.name}: limit must be >= 1, got {self.limit}")
        if self.kind == "rate" and (self.period <= 0 or self.burst < 1):
            raise ValueError(f"rule {self.name}: period must be > 0 and burst >= 1")

    @classmethod
    def rate(cls, name: str, limit: int, period: float = 1.0, burst: int | None = None) -> Rule:
        """``limit`` units per ``period`` seconds, ``burst`` at once (default: ``limit``)."""
        return cls(name, "rate", limit, period=period, burst=limit if burst is None else burst)

    @classmethod
    def quota(cls, name: str, limit: int, window: Window) -> Rule:
        """``limit`` units per UTC ``window`` (hour, day or month)."""
        return cls(name, "quota", limit, window=window)

    def scaled(self, share: float) -> Rule:
        """This rule with ``share`` of its limit and burst (at least 1 each): what one
        process allows alone when the shared counters are out of reach."""
        if share >= 1.0:
            return self
        limit = max(1, math.floor(self.limit * share))
        burst = max(1, math.floor(self.burst * share))
        return Rule(self.name, self.kind, limit, self.period, burst, self.window)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to one check. When refused, ``rule`` names the limit that refused (the one
    that frees up last when several do) and ``retry_after`` says when it would allow."""

    allowed: bool
    rule: str = ""  # the refusing rule's name; "" when allowed
    kind: RuleKind | None = None  # the refusing rule's kind: a rate (450) or a quota (452)
    retry_after: float = 0.0  # seconds until the refusing rule would allow this cost
    reset_at: float = 0.0  # epoch seconds of the same moment (for "resets at" in replies)
    local: bool = False  # decided in process because Redis was out of reach (fail-open)

    @classmethod
    def refused(cls, rule: Rule, now: float, retry_after: float) -> Verdict:
        """A refusal by ``rule`` that frees up ``retry_after`` seconds after ``now``."""
        return cls(False, rule.name, rule.kind, retry_after, now + retry_after)


ALLOWED = Verdict(True)


class Limiter(Protocol):
    """Checks limits: one call per check, all rules of a check decided atomically."""

    async def acquire(self, key: str, rules: Sequence[Rule], cost: int = 1) -> Verdict:
        """Consume ``cost`` units under every rule for ``key`` if all of them allow it;
        otherwise consume nothing and say which rule refused and until when."""
        ...

    async def used(self, key: str, rules: Sequence[Rule]) -> dict[str, int]:
        """Units counted now in each *quota* rule's current window for ``key``, consuming
        nothing (``postline tenant usage``); rates have no count and are left out."""
        ...

    async def close(self) -> None:
        """Release connections; the limiter is not used afterwards."""
        ...


def window_bounds(now: float, window: Window) -> tuple[float, float]:
    """Start and end (epoch seconds) of the UTC calendar ``window`` holding ``now``."""
    at = datetime.fromtimestamp(now, tz=UTC)
    if window == "hour":
        start = at.replace(minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=1)
    elif window == "day":
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
    else:
        start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start.timestamp(), end.timestamp()


def check_rules(rules: Sequence[Rule], cost: int) -> None:
    """Reject what no limiter can answer: a negative cost, two rules with one name."""
    if cost < 0:
        raise ValueError(f"cost must be >= 0, got {cost}")
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"rule names must differ within a check: {names}")
