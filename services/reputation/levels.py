"""A scope's level from its window's counts: ok, warning or paused.

Owns the thresholds a scope is judged by (the global ``[reputation]`` ones, each overridden
by the tenant's own when it set one) and :func:`judge`, a pure function. Which scopes may be
paused at all, and what a pause does, is ``engine.py``'s and ``actions.py``'s.

Rules, in order:

1. A paused scope stays paused: only an operator's resume ends a pause (the window then
   starts afresh), never the rates falling, which they do once nothing is sent.
2. Under ``min_messages`` final outcomes in the window no rate counts: ok.
3. A rate at or over its pause level: paused (warning where the scope may not be paused).
4. A rate at or over its warning level: warning.
5. A warning holds until every rate is under ``recover_ratio`` of its warning level.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.reputation.config import ReputationConfig
from shared.reputation import LEVEL_OK, LEVEL_PAUSED, LEVEL_WARNING, Rates, describe
from shared.wire.records import ReputationCounts, ReputationThresholds

#: The rates in the order a decision names them (the first that crossed is the reason).
RATE_NAMES = ("bounce", "complaint", "block")


@dataclass(frozen=True)
class Thresholds:
    """The levels one scope is judged by (fractions)."""

    bounce_warning: float
    bounce_pause: float
    complaint_warning: float
    complaint_pause: float
    block_warning: float
    block_pause: float
    min_messages: int

    @classmethod
    def of(cls, config: ReputationConfig, own: ReputationThresholds) -> Thresholds:
        """The global levels with each of the tenant's own that is set (0 keeps the global)."""
        return cls(
            bounce_warning=own.bounce_warning or config.bounce_warning,
            bounce_pause=own.bounce_pause or config.bounce_pause,
            complaint_warning=own.complaint_warning or config.complaint_warning,
            complaint_pause=own.complaint_pause or config.complaint_pause,
            block_warning=own.block_warning or config.block_warning,
            block_pause=own.block_pause or config.block_pause,
            min_messages=own.min_messages or config.min_messages,
        )

    def warning(self, rate: str) -> float:
        """The warning level of ``rate`` (bounce, complaint, block)."""
        return float(getattr(self, f"{rate}_warning"))

    def pause(self, rate: str) -> float:
        """The pause level of ``rate``."""
        return float(getattr(self, f"{rate}_pause"))


@dataclass(frozen=True)
class Verdict:
    """A scope's level and, for warning and paused, the rate that decided it in words."""

    level: str
    why: str = ""


def judge(
    counts: ReputationCounts,
    thresholds: Thresholds,
    *,
    current: str,
    may_pause: bool,
    recover_ratio: float,
    window_hours: int,
) -> Verdict:
    """The level of a scope whose window holds ``counts`` (see the module docstring)."""
    if current == LEVEL_PAUSED:
        return Verdict(LEVEL_PAUSED)
    if counts.sent < thresholds.min_messages:
        return Verdict(LEVEL_OK)
    rates = Rates.of(counts)
    values = {"bounce": rates.bounce, "complaint": rates.complaint, "block": rates.block}
    for name in RATE_NAMES:
        if values[name] >= thresholds.pause(name):
            level = LEVEL_PAUSED if may_pause else LEVEL_WARNING
            return Verdict(level, describe(name, counts, window_hours))
    for name in RATE_NAMES:
        if values[name] >= thresholds.warning(name):
            return Verdict(LEVEL_WARNING, describe(name, counts, window_hours))
    if current == LEVEL_WARNING:
        for name in RATE_NAMES:
            if values[name] >= thresholds.warning(name) * recover_ratio:
                return Verdict(LEVEL_WARNING, describe(name, counts, window_hours))
    return Verdict(LEVEL_OK)
