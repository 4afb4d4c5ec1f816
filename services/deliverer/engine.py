"""The delivery loop: fetch from ``postline.outbound``, dispatch per domain, commit the watermark.

Owns: :class:`Engine`. Records are fetched while fewer than ``max_in_flight`` are in memory,
decoded (undecodable ones are dead-lettered), and offered to their domain's
:class:`~services.deliverer.queue.DomainQueue`; what a queue sheds goes to a retry tier at once,
so a throttled or saturated domain never stalls its partition. Every ``flush_interval`` one bus
transaction publishes the records of finished jobs and commits offsets up to the lowest
unfinished one (``watermark.py``). On stop, transactions in flight finish within the drain
timeout, unstarted jobs are shed to a tier, and a last transaction commits.
Does not speak SMTP (``session.py``) nor decide outcomes (``outcome.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time

from services.deliverer.config import DelivererConfig
from services.deliverer.metrics import DelivererMetrics
from services.deliverer.pool import Connector
from services.deliverer.queue import Activity, DomainQueue, Job, JobResult
from services.deliverer.report import records_for
from services.deliverer.retry import RetrySchedule, dead_letter
from services.deliverer.shaping import Shapers
from services.deliverer.throttle import compile_patterns
from services.deliverer.watermark import Watermark
from shared.bus.base import BusMessage, Consumer
from shared.errors import BusError, DecodeError
from shared.topics import OUTBOUND

log = logging.getLogger("postline.deliverer")

GROUP = "postline-deliverer"


class Engine:
    """Consumes ``postline.outbound`` for one deliverer process."""

    def __init__(
        self,
        cfg: DelivererConfig,
        consumer: Consumer,
        connector: Connector,
        *,
        schedule: RetrySchedule,
        metrics: DelivererMetrics,
        activity: Activity,
    ) -> None:
        self._cfg = cfg
        self._consumer = consumer
        self._connector = connector
        self._schedule = schedule
        self._metrics = metrics
        self._activity = activity
        self._patterns = compile_patterns(cfg.throttling)
        self._queues: dict[str, DomainQueue] = {}
        self._watermark = Watermark()
        self._shapers = Shapers(cfg)
        self._throttled: set[str] = set()
        # Commit finished deliveries before a rebalance moves their partitions, so the next
        # owner does not send them again; only SMTP transactions in flight are redone.
        consumer.on_revoke(self.flush)

    @property
    def pending(self) -> int:
        """Records fetched and not yet committed."""
        return self._watermark.pending

    async def run(self, stopping: asyncio.Event, drain_timeout: float) -> None:
        """Deliver until ``stopping``, then drain within ``drain_timeout`` seconds."""
        last_flush = time.monotonic()
        while not stopping.is_set():
            room = self._cfg.max_in_flight - self._watermark.pending
            if room > 0:
                batch = await self._consumer.fetch(
                    min(room, self._cfg.fetch_batch), timeout=self._cfg.flush_interval
                )
                for message in batch:
                    self._admit(message)
            else:
                await asyncio.sleep(self._cfg.flush_interval)
            if time.monotonic() - last_flush >= self._cfg.flush_interval:
                await self.flush()
                last_flush = time.monotonic()
                self._drop_idle_queues()
        await self._drain(drain_timeout)

    def _admit(self, message: BusMessage) -> None:
        if not self._watermark.add(message.tp, message.offset):
            return  # refetched after an aborted transaction: already in hand
        try:
            delivery = OUTBOUND.decode(message.value or b"")
        except DecodeError as exc:
            dead = dead_letter(message, str(exc), self._consumer.group, time.time())
            self._watermark.finish(message.tp, message.offset, [dead])
            return
        job = Job(delivery, message.tp, message.offset)
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
            )
            self._queues[delivery.domain] = queue
        reason = queue.offer(job)
        if reason:
            until = queue.throttle.suspended_until
            self._done(job, JobResult(shed=reason, not_before=until, provider=queue.provider))

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
        records = records_for(
            job,
            result,
            time.time(),
            self._schedule,
            self._metrics,
            window_full_delay=self._cfg.window_full_delay,
        )
        self._watermark.finish(job.tp, job.offset, records)

    async def flush(self) -> None:
        """One transaction: records of the finished prefix plus its offsets."""
        owned = self._consumer.assignment()
        revoked = {tp for tp in self._watermark.partitions() if tp not in owned}
        for tp in revoked:
            # Revoked by a rebalance: the new owner redoes this work from the committed
            # offset (at-least-once); committing it here would abort the transaction.
            self._watermark.forget(tp)
        if revoked:
            # ... and sends what is still queued here: sending it too would duplicate it.
            dropped = sum(queue.drop(revoked) for queue in self._queues.values())
            log.info("partitions revoked", extra={"dropped_jobs": dropped})
        taken = self._watermark.take()
        if not len(taken):
            return
        try:
            async with self._consumer.transaction() as txn:
                for record in taken.outputs:
                    await txn.publish(record)
                txn.commit_offsets(taken.offsets)
        except BusError as exc:
            # Keep the work: put it back and continue fetching after what we hold.
            log.warning("deliverer transaction failed; retrying", extra={"error": str(exc)})
            self._watermark.restore(taken)
            for tp, offset in self._watermark.next_offsets().items():
                if tp in self._consumer.assignment():
                    await self._consumer.seek(tp, offset)
        self._metrics.window.set(self._window())

    async def _drain(self, timeout: float) -> None:
        queues = list(self._queues.values())
        stopping = asyncio.gather(*(q.stop() for q in queues))
        try:
            await asyncio.wait_for(asyncio.shield(stopping), timeout)
        except TimeoutError:
            log.warning("drain timeout: SMTP transactions still in flight are redone later")
        await self.flush()

    def _drop_idle_queues(self) -> None:
        for domain in [d for d, q in self._queues.items() if q.idle and not q.throttle.throttled]:
            del self._queues[domain]
        self._shapers.drop_unused()

    def _window(self) -> int:
        return sum(q.size for q in self._queues.values())
