"""One endpoint's circuit breaker, and when its failures mean it should be paused.

Closed: requests go out. After ``threshold`` consecutive failed requests it opens for
``open_for`` seconds: the endpoint's events go to the retry tiers without a request, so a
receiver that is down costs one timeout per request slot, not one per event, and never
holds events that other endpoints are waiting behind. Then it is half open: one request
(the probe) goes out; its success closes the circuit, its failure opens it again.

An endpoint failing ``pause_failures`` times in a row for at least ``pause_after`` seconds
should be paused (``pausing.py`` does it). Only real requests count as failures, never the
events sent to the retry tiers while the circuit is open. Pure: the caller passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


@dataclass
class Breaker:
    """The state of one endpoint's circuit (see the module docstring)."""

    threshold: int
    open_for: float
    pause_failures: int
    pause_after: float
    consecutive: int = 0  # failed requests in a row
    first_failure_at: float = 0.0  # when the current run of failures began
    open_until: float = 0.0  # 0: closed
    probing: bool = False  # the half-open probe is out

    def state(self, now: float) -> str:
        """closed, open or half_open."""
        if not self.open_until:
            return CLOSED
        return OPEN if now < self.open_until or self.probing else HALF_OPEN

    def allow(self, now: float) -> bool:
        """Whether a request may go out now (taking the probe's place when half open)."""
        state = self.state(now)
        if state == CLOSED:
            return True
        if state == HALF_OPEN:
            self.probing = True
            return True
        return False

    def succeeded(self) -> None:
        """A request was acknowledged: the circuit closes, the failures are forgotten."""
        self.consecutive = 0
        self.first_failure_at = 0.0
        self.open_until = 0.0
        self.probing = False

    def failed(self, now: float) -> None:
        """A request failed."""
        if not self.consecutive:
            self.first_failure_at = now
        self.consecutive += 1
        if self.consecutive >= self.threshold:
            self.open_until = now + self.open_for
            self.probing = False

    def should_pause(self, now: float) -> bool:
        """Failing long and often enough to pause the endpoint."""
        return (
            self.consecutive >= self.pause_failures
            and now - self.first_failure_at >= self.pause_after
        )
