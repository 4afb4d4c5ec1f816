"""The durable hand-off: Submission plus events in one bus publish, then the 250 reply.

"250 means durable" (DESIGN.md): the caller answers ``250 2.0.0 Ok: queued as <id>`` only after
:meth:`Handoff.submit` returned, i.e. the bus acknowledged all records atomically. When the bus
fails or does not answer within ``bus.publish_timeout`` it raises ``BusUnavailable`` (or another
``BusError``) and the caller answers 451 4.3.0; nothing was recorded.

Rejection events are different: they are a report, not a promise, so :class:`EventSink`
publishes them in the background and only logs a failure. This module does not build the
message bytes (``headers.py``) nor choose replies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from services.ingest.metrics import IngestMetrics
from shared.bus.base import Bus
from shared.errors import BusError, BusUnavailable
from shared.records import Event, Submission
from shared.topics import EVENTS, SUBMITTED

#: Extra time given to the bus beyond its own deadline before we stop waiting for it.
_GRACE = 1.0


class Handoff:
    """Publishes accepted messages."""

    def __init__(self, bus: Bus, timeout: float, metrics: IngestMetrics) -> None:
        self.bus = bus
        self.timeout = timeout
        self.metrics = metrics

    async def submit(self, submission: Submission | None, events: Sequence[Event]) -> None:
        """Publish the Submission (``None``: every recipient was dropped) with its events,
        atomically; raises ``BusError`` when the bus did not acknowledge."""
        records = [SUBMITTED.out(submission)] if submission is not None else []
        records += [EVENTS.out(event) for event in events]
        started = time.monotonic()
        try:
            await asyncio.wait_for(
                self.bus.publish(records, timeout=self.timeout), self.timeout + _GRACE
            )
        except TimeoutError as exc:
            raise BusUnavailable(f"no acknowledgement within {self.timeout:g}s") from exc
        self.metrics.handoff_seconds.observe(time.monotonic() - started)


class EventSink:
    """Publishes rejection events without holding up the SMTP reply."""

    def __init__(self, bus: Bus, timeout: float, log: logging.Logger) -> None:
        self.bus = bus
        self.timeout = timeout
        self.log = log
        self._tasks: set[asyncio.Task[None]] = set()

    def emit(self, event: Event) -> None:
        """Queue ``event`` for publishing."""
        task = asyncio.create_task(self._publish(event), name="ingest-event")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, event: Event) -> None:
        try:
            await asyncio.wait_for(
                self.bus.publish([EVENTS.out(event)], timeout=self.timeout), self.timeout + _GRACE
            )
        except (BusError, TimeoutError) as exc:
            self.log.warning(
                "rejection event not published",
                extra={"check": event.check, "message_id": event.message_id, "error": str(exc)},
            )

    async def flush(self) -> None:
        """Wait for every queued event (at shutdown)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks))
