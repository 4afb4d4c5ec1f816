"""Publishing opened and clicked events in the background, from a bounded line.

The pixel and the redirect never wait on the bus: the endpoint hands the event to
:meth:`TrackingPublisher.emit` (no I/O, no await) and answers. One task (:meth:`run`,
started through ``StageContext.spawn``) publishes what waits, in batches of up to
:data:`BATCH` per bus publish, each within the bus publish timeout, retried
:data:`ATTEMPTS` times (a publish that timed out is not visible: ``Bus.publish``), then
dropped and counted. At most ``max_pending`` events wait; past it a new event is dropped
and counted: an outage of the bus costs reports, never memory or a click.

Clicks wait ``burst_window`` before they are published, so that a burst of clicks on one
message (a scanner following every link) is flagged whole, its first clicks included
(``machine.ClickBursts``). Every event waits the same time or none, so the line stays in
release order; an open behind a click waits for it, at most one window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

import msgspec

from services.bouncer.metrics import TrackingMetrics
from services.bouncer.tracking.machine import ClickBursts
from shared.bus.base import Bus
from shared.errors import BusError, RecordTooLarge
from shared.wire.records import Event, EventKind
from shared.wire.topics import EVENTS, OutRecord

#: Most events in one publish (one bus transaction).
BATCH = 500
#: Publish attempts of one batch before it is dropped, and the pause after a failure.
ATTEMPTS = 3
BACKOFF = 0.5
#: Extra time given to the bus beyond its own deadline before we stop waiting for it.
_GRACE = 1.0


@dataclass
class _Waiting:
    event: Event
    release: float  # monotonic time from which it may be published


class TrackingPublisher:
    """The bounded line of events between the endpoint and the bus."""

    def __init__(
        self,
        bus: Bus,
        timeout: float,
        bursts: ClickBursts,
        metrics: TrackingMetrics,
        log: logging.Logger,
        *,
        max_pending: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus = bus
        self._timeout = timeout
        self._bursts = bursts
        self._metrics = metrics
        self._log = log
        self._max = max_pending
        self._clock = clock
        self._line: deque[_Waiting] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._publishing = 0  # events taken off the line, in a publish now

    @property
    def pending(self) -> int:
        """Events waiting or being published."""
        return len(self._line) + self._publishing

    def emit(self, event: Event) -> None:
        """Queue ``event`` (clicks: remembered for burst detection, held); never blocks."""
        if self._closing:
            self._metrics.dropped("stopped")
            return
        if self.pending >= self._max:
            self._metrics.dropped("full")
            return
        hold = 0.0
        if event.kind is EventKind.CLICKED and self._bursts.enabled:
            self._bursts.add((event.message_id, event.recipient), event.at, event.link)
            hold = self._bursts.window
        self._line.append(_Waiting(event, self._clock() + hold))
        self._metrics.pending(self.pending)
        self._wake.set()

    def close(self) -> None:
        """Stop taking events; :meth:`run` publishes what waits (unheld) and returns."""
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        """Publish waiting events as they are released, until closed and empty."""
        while self._line or not self._closing:
            delay = self._line[0].release - self._clock() if self._line else None
            if delay is None or (delay > 0 and not self._closing):
                self._wake.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            await self._publish(self._take())

    def _take(self) -> list[Event]:
        """The released events at the head of the line (all of them once closing), final."""
        now = self._clock()
        batch: list[Event] = []
        while self._line and len(batch) < BATCH:
            if self._line[0].release > now and not self._closing:
                break
            event = self._line.popleft().event
            if self._in_burst(event):
                event = msgspec.structs.replace(event, machine=True)
            self._metrics.served(event)
            batch.append(event)
        self._publishing = len(batch)
        return batch

    def _in_burst(self, event: Event) -> bool:
        """Whether a click not yet flagged is part of a burst (its window has passed)."""
        if event.kind is not EventKind.CLICKED or event.machine or not self._bursts.enabled:
            return False
        return self._bursts.in_burst((event.message_id, event.recipient), event.at)

    async def _publish(self, events: list[Event]) -> None:
        problem = await self._try_publish([EVENTS.out(event) for event in events])
        if problem is not None:
            self._metrics.dropped("bus", len(events))
            self._log.warning(
                "tracking events not published", extra={"events": len(events), "error": problem}
            )
        self._publishing = 0
        self._metrics.pending(self.pending)

    async def _try_publish(self, records: list[OutRecord]) -> str | None:
        """Publish, retrying; the last error when every attempt failed, else ``None``."""
        error = ""
        for attempt in range(ATTEMPTS):
            try:
                await asyncio.wait_for(
                    self._bus.publish(records, timeout=self._timeout), self._timeout + _GRACE
                )
                return None
            except RecordTooLarge as exc:  # the same records would be refused again
                return str(exc)
            except (BusError, TimeoutError) as exc:
                error = str(exc) or type(exc).__name__
                if attempt + 1 < ATTEMPTS and not self._closing:
                    await asyncio.sleep(BACKOFF * 2**attempt)
        return error
