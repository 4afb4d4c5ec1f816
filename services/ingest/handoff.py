"""The durable hand-off: the message and its events in one bus publish, then the 250 reply.

"250 means durable" (DESIGN.md): the caller answers ``250 2.0.0 Ok: queued as <id>`` only after
:meth:`Handoff.submit` returned, i.e. the bus acknowledged all records atomically. When the bus
fails or does not answer within ``bus.publish_timeout`` it raises ``BusUnavailable`` (or another
``BusError``) and the caller answers 451 4.3.0; nothing was recorded.

A message on its way carries its events (``accepted``, ``suppressed``, ``scanned``) inside its
Submission (``Submission.events``), and the signer publishes them in the transaction that
consumes it: the hand-off is then a single record, which Kafka makes durable with one
idempotent produce instead of a transaction, the largest part of the 250's wait. A message
held by the scanner (Quarantined) or with every recipient dropped publishes its events beside
it, atomically, as before.

Rejection events are different: they are a report, not a promise, so :class:`EventSink`
publishes them in the background from a bounded queue and only logs a failure. This module
does not build the message bytes (``headers.py``) nor choose replies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from msgspec.structs import replace

from services.ingest.metrics import IngestMetrics
from shared.bus.base import Bus
from shared.errors import BusError, BusUnavailable
from shared.wire.records import Event, Quarantined, Submission
from shared.wire.topics import EVENTS, QUARANTINE, SUBMITTED, OutRecord

#: Extra time given to the bus beyond its own deadline before we stop waiting for it.
_GRACE = 1.0
#: Most rejection events in one publish (one bus transaction).
BATCH = 500


class Handoff:
    """Publishes accepted messages."""

    def __init__(self, bus: Bus, timeout: float, metrics: IngestMetrics) -> None:
        self.bus = bus
        self.timeout = timeout
        self.metrics = metrics

    async def submit(
        self, submission: Submission | Quarantined | None, events: Sequence[Event]
    ) -> None:
        """Publish the Submission (``None``: every recipient was dropped; a Quarantined
        record: held back by the scanner) with its events, atomically; raises ``BusError``
        when the bus did not acknowledge."""
        records = _records(submission, events)
        del submission  # encoded: let the caller's only copy of the message go (issue 11)
        await self._publish(records)

    async def submit_many(
        self, messages: Sequence[tuple[Submission | Quarantined | None, Sequence[Event]]]
    ) -> None:
        """Publish several messages (the HTTP API's batch) in one atomic publish: the bus
        holds all of them or none; raises ``BusError`` when it did not acknowledge."""
        records: list[OutRecord] = []
        for submission, events in messages:
            records += _records(submission, events)
        await self._publish(records)

    async def _publish(self, records: list[OutRecord]) -> None:
        started = time.monotonic()
        try:
            await asyncio.wait_for(
                self.bus.publish(records, timeout=self.timeout), self.timeout + _GRACE
            )
        except TimeoutError as exc:
            raise BusUnavailable(f"no acknowledgement within {self.timeout:g}s") from exc
        self.metrics.handoff_seconds.observe(time.monotonic() - started)


def _records(message: Submission | Quarantined | None, events: Sequence[Event]) -> list[OutRecord]:
    """The records of one message: a Submission with its events inside (see the module
    docstring), or the other kinds with their events beside them."""
    if isinstance(message, Submission):
        return [SUBMITTED.out(replace(message, events=(*message.events, *events)))]
    records = [EVENTS.out(event) for event in events]
    if isinstance(message, Quarantined):
        records.insert(0, QUARANTINE.out(message))
    return records


class EventSink:
    """Publishes rejection events in the background, from a bounded queue.

    A refused command costs one queue slot, never a task of its own: one client pipelining
    100,000 refused RCPTs took ingest from 318 to 705 MB with a task per event (issue 11).
    When the queue is full the event is dropped and counted
    (``postline_ingest_rejection_events_dropped_total``): rejection events are a report, and
    the refusal itself still happens. One publisher task (:meth:`run`, started through
    ``StageContext.spawn``) publishes what is queued in batches of up to :data:`BATCH`.
    """

    def __init__(
        self, bus: Bus, timeout: float, log: logging.Logger, metrics: IngestMetrics, size: int
    ) -> None:
        self.bus = bus
        self.timeout = timeout
        self.log = log
        self.metrics = metrics
        self._queue: asyncio.Queue[Event] = asyncio.Queue(size)

    def emit(self, event: Event) -> None:
        """Queue ``event`` for publishing; drop and count it when the queue is full."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.metrics.rejection_events_dropped.inc()

    async def run(self) -> None:
        """Publish queued events in batches, forever (cancelled when the stage stops)."""
        while True:
            batch = [await self._queue.get()]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._publish(batch)
            for _ in batch:
                self._queue.task_done()

    async def _publish(self, events: list[Event]) -> None:
        try:
            await asyncio.wait_for(
                self.bus.publish([EVENTS.out(e) for e in events], timeout=self.timeout),
                self.timeout + _GRACE,
            )
        except (BusError, TimeoutError) as exc:
            self.metrics.rejection_events_dropped.inc(len(events))
            self.log.warning(
                "rejection events not published",
                extra={"events": len(events), "check": events[0].check, "error": str(exc)},
            )

    async def flush(self) -> None:
        """Wait until every queued event was published or given up (at shutdown)."""
        await self._queue.join()
