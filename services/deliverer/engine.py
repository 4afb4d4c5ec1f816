"""The delivery handler: what the deliverer does with each record of an outbound lane.

Owns: :class:`Engine`, a :class:`~shared.runtime.watermark_loop.WorkHandler` on the shared
out-of-order loop (which fetches, decodes, dead-letters, commits behind the watermark and
lives through bus failures). Each admitted Delivery is offered to its domain's
:class:`~services.deliverer.queue.DomainQueue`; what a queue sheds goes to a retry tier at
once, so a throttled or saturated domain never stalls its partition. A job whose work raised
is deferred with the reason (:meth:`Engine.failed`): retried, then expired, never lost and
never pinning the watermark. Before a queue, the
:class:`~services.deliverer.admission.Admission` the lanes share holds a paused sender's mail
and picks the source address; a queue is per (domain, source address), its sessions bound to
that address. One Engine serves one lane (``lanes.py``); the lanes' engines share one
:class:`~services.deliverer.shaping.Shapers` (the destination's limits). Operators' queue
actions (``control.py``) reach a Delivery here at admission (bounced or deleted, or held if
suspended, before and after its source address is chosen) and in the windows when they
arrive (:meth:`Engine.on_action`: suspended or purged jobs not yet in a transaction leave
their window; a throttle cancel lifts the destination's throttle). Does not speak SMTP
(``session.py``) nor decide outcomes (``outcome.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence

from services.deliverer.admission import Admission
from services.deliverer.config import DelivererConfig
from services.deliverer.control import Applied, QueueControl
from services.deliverer.lanes import BULK, TRANSACTIONAL, Lane
from services.deliverer.metrics import DelivererMetrics
from services.deliverer.operator import purged_records
from services.deliverer.outcome import Classified, Outcome, local_error
from services.deliverer.pool import Connector
from services.deliverer.queue import SHED_SUSPENDED, Activity, DomainQueue, Job, JobResult, Spawn
from services.deliverer.report import records_for
from services.deliverer.retry import RetrySchedule
from services.deliverer.shaping import Shapers
from services.deliverer.throttle import compile_patterns
from shared.bus.base import TopicPartition
from shared.queue import index
from shared.queue.targets import DOMAIN
from shared.runtime.consume import Item
from shared.runtime.watermark_loop import Ticket
from shared.wire.records import ControlVerb, Delivery
from shared.wire.topics import OutRecord

log = logging.getLogger("postline.deliverer")

GROUP = TRANSACTIONAL.group
BULK_GROUP = BULK.group


class Engine:
    """Dispatches one lane's Deliveries to its domain queues and turns results into records."""

    def __init__(
        self,
        cfg: DelivererConfig,
        connector: Connector,
        *,
        schedule: RetrySchedule,
        metrics: DelivererMetrics,
        activity: Activity,
        spawn: Spawn,
        lane: Lane = TRANSACTIONAL,
        shapers: Shapers | None = None,
        admission: Admission | None = None,
        clock: Callable[[], float] = time.time,
        control: QueueControl | None = None,
    ) -> None:
        self.lane = lane
        self._control = control  # operators' queue actions; None: none apply
        self._admission = admission  # None: no holds and no pools (the OS picks addresses)
        self._clock = clock
        self._cfg = cfg
        self._connector = connector
        self._schedule = schedule
        self._metrics = metrics
        self._activity = activity
        self._spawn = spawn
        self._patterns = compile_patterns(cfg.throttling)
        self._queues: dict[tuple[str, str], DomainQueue] = {}  # (domain, source address)
        # Shared with the other lane's engine: connection slots, pacing and throttles are the
        # destination's, whatever the lane (shaping.py).
        self._shapers = shapers if shapers is not None else Shapers(cfg)

    def admit(self, ticket: Ticket[Delivery]) -> None:
        """Offer the Delivery to its domain's window from its source address; shed it to a
        tier when it does not fit, is held or waits for a warm-up allowance."""
        delivery = ticket.item.record
        job = Job(delivery, ticket)
        provider = self._shapers.provider_of(delivery.domain)
        if self._control is not None:
            purge = self._control.purge(delivery)
            if purge is not None:
                ticket.finish(purged_records(delivery, purge, self._clock(), self._metrics))
                return
            held = self._held(job, provider)
            if held is not None:
                self._done(job, held)
                return
        if self._admission is not None:
            verdict = self._admission.decide(delivery, provider)
            if verdict.shed:
                self._done(job, JobResult(shed=verdict.shed, not_before=verdict.not_before))
                return
            job.source, job.reservation = verdict.source, verdict.reservation
            held = self._held(job, provider) if job.source.address else None
            if held is not None:  # its source address is suspended
                self._done(job, held)
                return
        key = (delivery.domain, job.source.address)
        queue = self._queues.get(key)
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
                bulk=self.lane.bulk,
                source=job.source,
                hold=self._held if self._control is not None else None,
            )
            self._queues[key] = queue
        reason = queue.offer(job)
        if reason:
            until = queue.throttle.suspended_until
            self._done(job, JobResult(shed=reason, not_before=until, provider=queue.provider))

    def failed(self, item: Item[Delivery], exc: Exception) -> Sequence[OutRecord]:
        """A job's work raised: every recipient is deferred with the reason (RFC 3463
        4.3.0), so the message is retried, then expired with a DSN, like any deferral."""
        delivery = item.record
        queues = [q for q in self._queues.values() if q.domain == delivery.domain]
        for queue in queues:  # one per source address
            if queue.discard(item.message.tp, item.message.offset):  # timed out while queued
                break
        failure = Classified(Outcome.DEFERRED, local_error(exc))
        result = JobResult(dict.fromkeys(delivery.rcpt_to, failure))
        if queues:
            result.provider = queues[0].provider
        return self._records(delivery, result, item)

    @property
    def queues(self) -> list[DomainQueue]:
        """The domain queues in memory now (the live queue state, snapshot.py)."""
        return list(self._queues.values())

    def on_action(self, applied: Applied) -> None:
        """A new operator's action: jobs still waiting in a window that it suspends or
        purges leave it now (those in a transaction finish it); a throttle cancel lifts
        the destination's throttle."""
        control = self._control
        verb = applied.action.verb
        if control is None or verb is ControlVerb.QUEUE_FLUSH:
            return  # mail in a window is about to be tried anyway
        if verb is ControlVerb.THROTTLE_CANCEL:
            self._cancel_throttles(applied)
            return
        for queue in list(self._queues.values()):
            if verb is ControlVerb.QUEUE_SUSPEND:
                held: dict[Job, JobResult] = {}
                for job in queue.queued:
                    if (result := self._held(job, queue.provider)) is not None:
                        held[job] = result
                for job in queue.extract(held.__contains__):
                    self._done(job, held[job])
                continue
            purges = {job: p for job in queue.queued if (p := control.purge(job.delivery))}
            for job in queue.extract(purges.__contains__):
                if self._admission is not None:
                    self._admission.give_back(job.reservation)  # never attempted
                records = purged_records(job.delivery, purges[job], self._clock(), self._metrics)
                job.ticket.finish(records)

    def _held(self, job: Job, provider: str) -> JobResult | None:
        """The shed result of a job an operator's suspension holds, sent to ``provider``
        from its source address; ``None`` when none does. Held like a paused sender's mail
        (hold.py): in a tier without an attempt, back at the suspension's end or after
        ``suspended_hold`` to be looked at again, whichever comes first."""
        if self._control is None:
            return None
        applied = self._control.suspension(
            job.delivery, provider=provider, source=job.source.address
        )
        if applied is None:
            return None
        self._metrics.held.labels(SHED_SUSPENDED).inc()
        now = self._clock()
        back = min(applied.until, now + self._cfg.suspended_hold)
        action = applied.action
        cause = f"suspended: {action.target} by {action.by or 'an operator'}"
        if action.why:
            cause += f" ({action.why})"
        return JobResult(shed=SHED_SUSPENDED, not_before=back, provider=provider, cause=cause)

    def _cancel_throttles(self, applied: Applied) -> None:
        """Lift the throttles of the target: its own shapers and those its queues use."""
        target = applied.target
        shapers = {id(s): s for s in self._shapers.keyed(target.kind, target.name)}
        # The provider label of each: the target's, or the domain's provider as last seen.
        providers = dict.fromkeys(shapers, self._shapers.provider_of(target.name))
        for queue in self._queues.values():
            if (queue.domain if target.kind == DOMAIN else queue.provider) == target.name:
                shapers[id(queue.shaper)] = queue.shaper
                providers[id(queue.shaper)] = queue.provider
        for key, shaper in shapers.items():
            change = shaper.throttle.cancel()
            if change is None:
                continue
            provider = target.name if target.kind != DOMAIN else providers[key]
            self._metrics.throttle_changes.labels(provider, change.action).inc()
            if shaper.throttle_counted:
                shaper.throttle_counted = False
                self._metrics.throttled.labels(provider).dec()
            shaper.wake()
            log.info("throttle cancelled", extra={"shaper": shaper.key, "by": applied.action.by})

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
        for key in [k for k, q in self._queues.items() if q.idle and not q.throttle.throttled]:
            self._queues.pop(key).close()
        self._shapers.drop_unused()
        self._metrics.window.labels(self.lane.name).set(sum(q.size for q in self._queues.values()))
        if self._admission is not None:
            self._admission.observe()

    def _done(self, job: Job, result: JobResult) -> None:
        """A job ended (called by the queues): its records wait for the watermark."""
        queue = self._queues.get((job.delivery.domain, job.source.address))
        if result.shed and self._admission is not None:
            self._admission.give_back(job.reservation)  # no attempt: the allowance is unused
        for change in result.throttle:
            self._metrics.throttle_changes.labels(result.provider, change.action).inc()
            if queue is None:
                continue
            # On the shaper, not in this engine: the other lane may see the recovery.
            shaper = queue.shaper
            if change.action == "throttle" and not shaper.throttle_counted:
                shaper.throttle_counted = True
                self._metrics.throttled.labels(result.provider).inc()
            elif change.action in ("recover", "cancel") and shaper.throttle_counted:
                shaper.throttle_counted = False
                self._metrics.throttled.labels(result.provider).dec()
        job.ticket.finish(self._records(job.delivery, result, job.ticket.item))

    def _records(
        self, delivery: Delivery, result: JobResult, item: Item[Delivery] | None = None
    ) -> list[OutRecord]:
        copy = None
        if item is not None:  # the lane record read: the Delivery's data is there
            message = item.message
            copy = index.Copy(message.topic, message.partition, message.offset)
        return records_for(
            delivery,
            result,
            self._clock(),
            self._schedule,
            self._metrics,
            window_full_delay=self._cfg.window_full_delay,
            mail_log=self._cfg.mail_log,
            copy=copy,
        )
