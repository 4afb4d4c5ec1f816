"""This replica's live queue state on ``postline.queue.live``, for ``postline queue summary``.

Owns :func:`loads` (what the lanes' domain windows hold, per destination domain, provider,
tenant, source address and lane: waiting in the window, in an SMTP transaction, the oldest
submission, the destination's last temporary failure and throttle) and :class:`Snapshots`,
the supervised task that publishes them every ``deliverer.queue_snapshot_interval`` as one
:class:`~shared.wire.records.QueueSnapshot` keyed by the replica's instance id, and a last
one marked ``stopped`` when the replica stops.

Why published rather than served: what is in memory is spread over every replica, and a
command (or the admin API, in another stage) would otherwise have to find and ask each pod.
A compacted topic holds the last word of each replica, read in one go on Kafka and on the
embedded bus alike; the reader ignores a snapshot older than three intervals (a replica that
died without its last word). The deferred mail is not here: it is in the index
(``shared.queue.index``), which does not depend on a deliverer running.

Does not change anything it reports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from services.deliverer.engine import Engine
from services.deliverer.metrics import DelivererMetrics
from shared.bus.base import Bus
from shared.errors import BusError
from shared.wire.records import DEFAULT_TENANT, QueueLoad, QueueSnapshot
from shared.wire.topics import QUEUE_LIVE

#: Most loads in one snapshot (a few hundred bytes each; the topic takes 8 MiB records).
MAX_LOADS = 20000

Key = tuple[str, str, str, str, str]  # domain, provider, tenant, source, lane


def loads(engines: Iterable[Engine], now: float) -> list[QueueLoad]:
    """What the engines' windows hold, one load per domain, provider, tenant, source and
    lane, the largest first."""
    counts: dict[Key, list[float]] = {}  # window, in flight, oldest
    errors: dict[Key, tuple[str, float, float]] = {}  # last error, at, throttled until
    for engine in engines:
        for queue in engine.queues:
            throttled = queue.throttle.suspended_until if queue.throttle.suspended(now) else 0.0
            for in_flight, jobs in ((0, queue.queued), (1, queue.sending)):
                for job in jobs:
                    delivery = job.delivery
                    key = (
                        queue.domain,
                        queue.provider,
                        delivery.tenant or DEFAULT_TENANT,
                        queue.source.address,
                        engine.lane.name,
                    )
                    row = counts.setdefault(key, [0, 0, 0.0])
                    row[in_flight] += 1
                    if delivery.submitted_at and (not row[2] or delivery.submitted_at < row[2]):
                        row[2] = delivery.submitted_at
                    errors[key] = (queue.last_error, queue.last_error_at, throttled)
    ordered = sorted(counts.items(), key=lambda item: -(item[1][0] + item[1][1]))
    return [
        QueueLoad(
            domain=key[0],
            provider=key[1],
            tenant=key[2],
            source=key[3],
            lane=key[4],
            window=int(row[0]),
            in_flight=int(row[1]),
            oldest=row[2],
            last_error=errors[key][0],
            last_error_at=errors[key][1],
            throttled_until=errors[key][2],
        )
        for key, row in ordered
    ]


class Snapshots:
    """Publishes this replica's snapshot now and then (see the module docstring)."""

    def __init__(
        self,
        bus: Bus,
        instance: str,
        interval: float,
        *,
        engines: Callable[[], Sequence[Engine]],
        pending: Callable[[], dict[str, int]],
        metrics: DelivererMetrics,
        clock: Callable[[], float] = time.time,
        each: Callable[[], None] | None = None,
    ) -> None:
        """``each``: housekeeping to do with every snapshot (the control gauges)."""
        self._bus = bus
        self._each = each
        self._instance = instance
        self._interval = float(interval)
        self._engines = engines
        self._pending = pending
        self._metrics = metrics
        self._clock = clock

    def snapshot(self, *, stopped: bool = False) -> QueueSnapshot:
        """The state now."""
        now = self._clock()
        found = [] if stopped else loads(self._engines(), now)
        return QueueSnapshot(
            instance=self._instance,
            at=now,
            interval=self._interval,
            loads=tuple(found[:MAX_LOADS]),
            pending={} if stopped else self._pending(),
            truncated=max(0, len(found) - MAX_LOADS),
            stopped=stopped,
        )

    async def run(self, stopping: asyncio.Event, log: logging.Logger) -> None:
        """Publish every interval until ``stopping``, then the last word."""
        while not stopping.is_set():
            if self._each is not None:
                self._each()
            await self.publish(self.snapshot(), log)
            try:
                await asyncio.wait_for(stopping.wait(), self._interval)
            except TimeoutError:
                continue
        await self.publish(self.snapshot(stopped=True), log)

    async def publish(self, snapshot: QueueSnapshot, log: logging.Logger) -> None:
        """Publish one snapshot; a bus failure is counted and logged (the next one may pass)."""
        try:
            await self._bus.publish([QUEUE_LIVE.out(snapshot)], timeout=self._interval)
        except BusError as exc:
            self._metrics.snapshot_failures.inc()
            log.warning("queue snapshot not published", extra={"error": str(exc)})
