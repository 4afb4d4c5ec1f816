"""The stage's two handlers on the out-of-order loop (``shared.runtime.watermark_loop``).

- :class:`EventHandler` (group ``postline-webhooks``, ``postline.events``): an event with
  no endpoint to go to is finished at once; otherwise it is handed to each endpoint's queue
  (a paused endpoint's copy goes straight to a retry tier) and finished once every endpoint
  acknowledged it or its copy is a retry record, published with the event's offset in the
  loop's transaction. So an event is never lost between the two (at least once), and a crash
  before the commit sends it again with the same event id.
- :class:`RetryHandler` (group ``postline-webhooks-retry``, every tier): a record not due
  yet holds its tier partition until it is; a due one goes through the same queues; past
  ``max_age`` it is a dead letter. A removed endpoint's records are dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence

from services.webhooks.client import Outcome
from services.webhooks.dispatch import Dispatcher
from services.webhooks.endpoints import Endpoints, Target
from services.webhooks.metrics import WebhooksMetrics
from services.webhooks.payload import item_of
from services.webhooks.retry import RETRY_GROUP, Schedule, attempt_of, dead_letter, item_of_attempt
from shared.bus.base import TopicPartition
from shared.runtime.consume import Item as LoopItem
from shared.runtime.watermark_loop import Ticket
from shared.wire.records import Event, WebhookAttempt
from shared.wire.topics import OutRecord

log = logging.getLogger("postline.webhooks")


class _Pending:
    """An event's copies still out; finishes its ticket when the last one ends."""

    def __init__(self, ticket: Ticket[Event], count: int) -> None:
        self.ticket = ticket
        self.count = count
        self.outputs: list[OutRecord] = []

    def one_ended(self, outputs: Sequence[OutRecord]) -> None:
        self.outputs.extend(outputs)
        self.count -= 1
        if self.count == 0:
            self.ticket.finish(self.outputs)


class _Handler:
    """What both loops' handlers send with: the endpoints, their queues, the tiers."""

    def __init__(
        self,
        endpoints: Endpoints,
        dispatcher: Dispatcher,
        schedule: Schedule,
        metrics: WebhooksMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoints = endpoints
        self.dispatcher = dispatcher
        self.schedule = schedule
        self.metrics = metrics
        self.clock = clock


class EventHandler(_Handler):
    """Events in, one copy per matching endpoint (see the module docstring)."""

    def admit(self, ticket: Ticket[Event]) -> None:
        """Hand the event to its endpoints (or finish it: none)."""
        event = ticket.item.record
        targets = self.endpoints.targets(event)
        value = ticket.item.message.value
        if not targets or value is None:
            ticket.finish([])
            return
        item = item_of(event, value)
        pending = _Pending(ticket, len(targets))
        for target in targets:
            attempt = attempt_of(target.tenant, target.endpoint.id, item)
            if target.paused:
                tier, record = self.schedule.held(attempt, self.clock())
                self.metrics.deferred.labels("paused").inc()
                self.metrics.retries.labels(tier).inc()
                pending.one_ended([self.schedule.out(tier, record)])
                continue

            def done(outcome: Outcome, attempted: bool, attempt: WebhookAttempt = attempt) -> None:
                pending.one_ended(retry_outputs(self, attempt, outcome, attempted))

            self.dispatcher.submit(target, item, done)

    def failed(self, item: LoopItem[Event], exc: Exception) -> Sequence[OutRecord]:
        """Handing out raised (a bug): the event's copies go to the first tier for every
        endpoint it matches, so none is lost."""
        value = item.message.value
        if value is None:
            return []
        event_item = item_of(item.record, value)
        outputs: list[OutRecord] = []
        for target in self.endpoints.targets(item.record):
            attempt = attempt_of(target.tenant, target.endpoint.id, event_item)
            tier, record = self.schedule.after_failure(
                attempt, self.clock(), f"stage error: {exc}", attempted=False
            )
            outputs.append(self.schedule.out(tier, record))
        return outputs

    def revoked(self, partitions: Collection[TopicPartition]) -> None:
        """Jobs of lost partitions run on; their late finish is ignored by the loop."""

    async def drain(self, timeout: float) -> None:
        """Shed the queued jobs to the tiers and wait for the requests in flight."""
        await self.dispatcher.drain(timeout)

    def flushed(self) -> None:
        """Drop idle endpoint queues."""
        self.dispatcher.housekeeping()


def retry_outputs(
    handler: _Handler, attempt: WebhookAttempt, outcome: Outcome, attempted: bool
) -> list[OutRecord]:
    """Nothing after an acknowledgement; else the retry record of ``attempt``."""
    if outcome.ok:
        return []
    tier, record = handler.schedule.after_failure(
        attempt, handler.clock(), outcome.error or outcome.result, attempted=attempted
    )
    handler.metrics.retries.labels(tier).inc()
    return [handler.schedule.out(tier, record)]


class RetryHandler(_Handler):
    """The retry tiers: due records go through the endpoint queues again."""

    def __init__(
        self,
        endpoints: Endpoints,
        dispatcher: Dispatcher,
        schedule: Schedule,
        metrics: WebhooksMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(endpoints, dispatcher, schedule, metrics, clock)
        self.in_hand = 0

    def admit(self, ticket: Ticket[WebhookAttempt]) -> None:
        """Release the record when due: send it, hold it (paused), or give it up."""
        attempt = ticket.item.record
        at = self.clock()
        if attempt.not_before > at:
            ticket.hold_until(attempt.not_before)
            return
        target = self.endpoints.target(attempt.tenant, attempt.endpoint)
        if target is None:
            log.info(
                "retry of a removed webhook endpoint dropped",
                extra={"tenant": attempt.tenant, "endpoint": attempt.endpoint},
            )
            ticket.finish([])
            return
        if self.schedule.expired(attempt, at):
            self.metrics.dead.inc()
            ticket.finish(dead_letter(attempt, ticket.item.message, at, group=RETRY_GROUP))
            return
        if target.paused:
            tier, record = self.schedule.held(attempt, at)
            self.metrics.deferred.labels("paused").inc()
            self.metrics.retries.labels(tier).inc()
            ticket.finish([self.schedule.out(tier, record)])
            return
        self._send(ticket, target, attempt)

    def _send(
        self, ticket: Ticket[WebhookAttempt], target: Target, attempt: WebhookAttempt
    ) -> None:
        self.in_hand += 1
        self.metrics.held.set(self.in_hand)

        def done(outcome: Outcome, attempted: bool) -> None:
            self.in_hand -= 1
            self.metrics.held.set(self.in_hand)
            ticket.finish(retry_outputs(self, attempt, outcome, attempted))

        self.dispatcher.submit(target, item_of_attempt(attempt), done)

    def failed(self, item: LoopItem[WebhookAttempt], exc: Exception) -> Sequence[OutRecord]:
        """Releasing raised: the record goes back to a tier as it is (without an attempt)."""
        tier, record = self.schedule.after_failure(
            item.record, self.clock(), f"stage error: {exc}", attempted=False
        )
        return [self.schedule.out(tier, record)]

    def revoked(self, partitions: Collection[TopicPartition]) -> None:
        """Nothing is queued here beyond the shared endpoint queues."""

    async def drain(self, timeout: float) -> None:
        """The event handler's drain sheds the shared queues."""
        await self.dispatcher.drain(timeout)

    def flushed(self) -> None:
        """The event handler does the housekeeping."""
