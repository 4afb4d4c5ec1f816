"""The delivery handler: what the deliverer does with each record of ``postline.outbound``.

Owns: :class:`Engine`, a :class:`~shared.runtime.watermark_loop.WorkHandler` on the shared
out-of-order loop (which fetches, decodes, dead-letters, commits behind the watermark and
lives through bus failures). Each admitted Delivery is offered to its domain's
:class:`~services.deliverer.queue.DomainQueue`; what a queue sheds goes to a retry tier at
once, so a throttled or saturated domain never stalls its partition. A job whose work raised
is deferred with the reason (:meth:`Engine.failed`): retried, then expired, never lost and
never pinning the watermark. Does not speak SMTP (``session.py``) nor decide outcomes
(``outcome.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Sequence

from services.deliverer.config import DelivererConfig
from services.deliverer.metrics import DelivererMetrics
from services.deliverer.outcome import Classified, Outcome, local_error
from services.deliverer.pool import Connector
from services.deliverer.queue import Activity, DomainQueue, Job, JobResult, Spawn
from services.deliverer.report import records_for
from services.deliverer.retry import RetrySchedule
from services.deliverer.shaping import Shapers
from services.deliverer.throttle import compile_patterns
from shared.bus.base import TopicPartition
from shared.runtime.consume import Item
from shared.runtime.watermark_loop import Ticket
from shared.wire.records import Delivery
from shared.wire.topics import OutRecord

log = logging.getLogger("postline.deliverer")

GROUP = "postline-deliverer"


class Engine:
    """Dispatches Deliveries to their domain queues and turns results into records."""

    def __init__(
        self,
        cfg: DelivererConfig,
        connector: Connector,
        *,
        schedule: RetrySchedule,
        metrics: DelivererMetrics,
        activity: Activity,
        spawn: Spawn,
    ) -> None:
        self._cfg = cfg
        self._connector = connector
        self._schedule = schedule
        self._metrics = metrics
        self._activity = activity
        self._spawn = spawn
        self._patterns = compile_patterns(cfg.throttling)
        self._queues: dict[str, DomainQueue] = {}
        self._shapers = Shapers(cfg)
        self._throttled: set[str] = set()

    def admit(self, ticket: Ticket[Delivery]) -> None:
        """Offer the Delivery to its domain's window; shed it to a tier when it does not fit."""
        delivery = ticket.item.record
        job = Job(delivery, ticket)
        queue = self._queues.get(delivery.domain)
        if queue is None:
            queue = DomainQueue(
                delivery.domain,
                self._cfg,
                self._connector,
                patterns=self._patterns,
                done=self._done,
                activity=self._activity,
                shapers=self._shapers,
                spawn=self._spawn,
            )
            self._queues[delivery.domain] = queue
        reason = queue.offer(job)
        if reason:
            until = queue.throttle.suspended_until
            self._done(job, JobResult(shed=reason, not_before=until, provider=queue.provider))

    def failed(self, item: Item[Delivery], exc: Exception) -> Sequence[OutRecord]:
        """A job's work raised: every recipient is deferred with the reason (RFC 3463
        4.3.0), so the message is retried, then expired with a DSN, like any deferral."""
        delivery = item.record
        queue = self._queues.get(delivery.domain)
        if queue is not None:
            queue.discard(item.message.tp, item.message.offset)  # timed out while queued
        failure = Classified(Outcome.DEFERRED, local_error(exc))
        result = JobResult(dict.fromkeys(delivery.rcpt_to, failure))
        if queue is not None:
            result.provider = queue.provider
        return self._records(delivery, result)

    def revoked(self, partitions: Collection[TopicPartition]) -> None:
        """Drop queued jobs of lost partitions: their new owner sends them."""
        dropped = sum(queue.drop(partitions) for queue in self._queues.values())
        log.info("partitions revoked", extra={"dropped_jobs": dropped})

    async def drain(self, timeout: float) -> None:
        """Finish SMTP transactions in flight within ``timeout``; shed what has not started."""
        stopping = asyncio.gather(*(q.stop() for q in self._queues.values()))
        try:
            await asyncio.wait_for(asyncio.shield(stopping), timeout)
        except TimeoutError:
            log.warning("drain timeout: SMTP transactions still in flight are redone later")

    def flushed(self) -> None:
        """After a commit: forget idle domains, publish the window gauge."""
        for domain in [d for d, q in self._queues.items() if q.idle and not q.throttle.throttled]:
            del self._queues[domain]
        self._shapers.drop_unused()
        self._metrics.window.set(sum(q.size for q in self._queues.values()))

    def _done(self, job: Job, result: JobResult) -> None:
        """A job ended (called by the queues): its records wait for the watermark."""
        queue = self._queues.get(job.delivery.domain)
        key = queue.shaper.key if queue is not None else job.delivery.domain
        for change in result.throttle:
            self._metrics.throttle_changes.labels(result.provider, change.action).inc()
            if change.action == "throttle" and key not in self._throttled:
                self._throttled.add(key)
                self._metrics.throttled.labels(result.provider).inc()
            elif change.action == "recover" and key in self._throttled:
                self._throttled.discard(key)
                self._metrics.throttled.labels(result.provider).dec()
        job.ticket.finish(self._records(job.delivery, result))

    def _records(self, delivery: Delivery, result: JobResult) -> list[OutRecord]:
        return records_for(
            delivery,
            result,
            time.time(),
            self._schedule,
            self._metrics,
            window_full_delay=self._cfg.window_full_delay,
        )
