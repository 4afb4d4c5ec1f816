"""Adaptive throttling of one destination after 421 or 4.7.x rate-limit replies.

Owns: :func:`is_throttle_reply` and :class:`Throttle`, the per-domain state machine: a throttle
signal halves the destination's concurrency and rate and suspends it for a back-off (doubling
on each signal in a row, capped); each ``ramp_after`` successes afterwards take one step back
up (concurrency + 1, rate x 1.5) until the policy's limits are reached again; an operator's
``throttle_cancel`` puts it back at the policy's limits at once. Every change is
returned as a :class:`ThrottleChange` for the caller to publish (THROTTLED event, metrics).
Does not send or queue anything (``queue.py`` applies the limits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.deliverer.config import Policy, Throttling
from shared.wire.records import SmtpReply

#: RFC 5321 4.2.3: "421 Service not available, closing transmission channel" is what
#: providers answer when we send too fast (Gmail 421 4.7.28, Microsoft 421 4.7.0).
SERVICE_NOT_AVAILABLE = 421
#: The rate a destination with no configured rate gets after its first throttle (per minute).
UNLIMITED_START_RATE = 120.0
_RAMP_FACTOR = 1.5
_MIN_RATE = 1.0


def compile_patterns(cfg: Throttling) -> list[re.Pattern[str]]:
    """The configured rate-limit reply patterns, compiled once."""
    return [re.compile(p) for p in cfg.patterns]


def is_throttle_reply(reply: SmtpReply, patterns: list[re.Pattern[str]]) -> bool:
    """421 always; a 4.7.x reply when its text matches one of the known provider patterns."""
    if reply.code == SERVICE_NOT_AVAILABLE:
        return True
    if reply.code // 100 != 4 or not reply.enhanced.startswith("4.7."):
        return False
    text = str(reply)
    return any(p.search(text) for p in patterns)


@dataclass(frozen=True)
class ThrottleChange:
    """One step of the state machine, for the THROTTLED event and the metrics."""

    action: str  # "throttle" | "ramp" | "recover" | "cancel" (the operator's)
    concurrency: int
    rate: float  # messages per minute; 0 = unlimited
    suspended_until: float
    reply: SmtpReply | None = None

    def describe(self) -> str:
        """One line for the event's ``detail``."""
        rate = "unlimited" if self.rate == 0 else f"{self.rate:.1f}/min"
        return f"{self.action}: concurrency={self.concurrency} rate={rate}"


class Throttle:
    """The throttle state of one destination."""

    def __init__(self, cfg: Throttling, policy: Policy) -> None:
        self._cfg = cfg
        self.policy = policy
        self.concurrency = policy.max_connections
        self.rate = policy.messages_per_minute  # 0 = unlimited
        self.suspended_until = 0.0
        self._backoff = 0.0
        self._successes = 0

    @property
    def throttled(self) -> bool:
        """Whether limits are below the policy's (suspended or ramping back)."""
        return self._backoff > 0

    def suspended(self, now: float) -> bool:
        """Whether the destination must not be tried now."""
        return now < self.suspended_until

    def set_policy(self, policy: Policy) -> None:
        """Apply a new policy (the provider became known); an active throttle stays."""
        self.policy = policy
        if not self.throttled:
            self.concurrency, self.rate = policy.max_connections, policy.messages_per_minute
        else:
            self.concurrency = min(self.concurrency, policy.max_connections)

    def on_throttle(self, now: float, reply: SmtpReply | None = None) -> ThrottleChange | None:
        """A throttle reply: cut, suspend, and return the change (``None`` while suspended)."""
        if self.suspended(now):
            return None  # in-flight transactions reporting the same throttle
        self._backoff = (
            self._cfg.backoff
            if self._backoff == 0
            else min(self._backoff * 2, self._cfg.max_backoff)
        )
        self.concurrency = max(1, self.concurrency // 2)
        current = self.rate if self.rate > 0 else UNLIMITED_START_RATE
        self.rate = max(_MIN_RATE, current / 2)
        self.suspended_until = now + self._backoff
        self._successes = 0
        return ThrottleChange("throttle", self.concurrency, self.rate, self.suspended_until, reply)

    def cancel(self) -> ThrottleChange | None:
        """The operator lifts the throttle (``postline queue throttle-cancel``): back to the
        policy's limits, not suspended; ``None`` when not throttled."""
        if not self.throttled:
            return None
        self.concurrency, self.rate = self.policy.max_connections, self.policy.messages_per_minute
        self.suspended_until = 0.0
        self._backoff = 0.0
        self._successes = 0
        return ThrottleChange("cancel", self.concurrency, self.rate, 0.0)

    def on_success(self, now: float) -> ThrottleChange | None:
        """A delivery went through: after ``ramp_after`` of them, one step back up."""
        if not self.throttled:
            return None
        self._successes += 1
        if self._successes < self._cfg.ramp_after:
            return None
        self._successes = 0
        self.concurrency = min(self.policy.max_connections, self.concurrency + 1)
        target = self.policy.messages_per_minute
        self.rate = self.rate * _RAMP_FACTOR
        if (target > 0 and self.rate >= target) or (
            target == 0 and self.rate >= 8 * UNLIMITED_START_RATE
        ):
            self.rate = target
        if self.concurrency == self.policy.max_connections and self.rate == target:
            self._backoff = 0.0
            return ThrottleChange("recover", self.concurrency, self.rate, self.suspended_until)
        return ThrottleChange("ramp", self.concurrency, self.rate, self.suspended_until)
