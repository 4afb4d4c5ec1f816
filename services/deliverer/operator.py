"""What an operator's queue action does to a Delivery outside a delivery attempt.

Owns :func:`purged_records` (``postline queue bounce`` and ``delete``): per recipient a
BOUNCED event (a bounce: with the original header block, so the bouncer sends the sender a
DSN, as for any final failure) or a DELETED event (a delete: silent, Postfix's ``postsuper
-d``), each with the reply ``550 5.0.0 bounced|deleted by the operator[: why]`` and
classification ``operator`` (the bouncer suppresses no recipient for it, reputation counts
nothing), plus the tombstone of the Delivery's ``postline.queue`` entry. Wherever the
Delivery is met (admission, a domain window, the retry loop), these records replace its
attempt, in that loop's transaction.

And :class:`TierIntercept`, what the retry loop asks before holding a tier record: purged,
released early by a flush (``postqueue -f``), or written again further on while a flush,
bounce or delete sweeps the partition. A tier partition is FIFO and held at its first record
not yet due, so the mail a flush or purge concerns may sit behind records it does not
concern: during a sweep (``control.py``: records written before the action, for as long as
such a record can still be waiting) each record not due and not concerned is published again
at the end of its partition (same bytes, same ``not_before``) and the loop reads on, in the
loop's transaction. That costs one rewrite of the waiting records of the partitions swept,
the price of a log-structured queue without per-record deletes: only the partitions the
action's domains are keyed to for a message or a domain (one per tier), every partition for
a tenant, a provider or everything; a sweep ends at the first record written after the
action, so the rewritten copies are never rewritten again.

Does not decide what an action concerns (``control.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from services.deliverer.control import Applied, QueueControl
from services.deliverer.metrics import DelivererMetrics
from services.deliverer.retry import back, dsn_fields, failure_fields
from shared.bus.base import Bus, TopicPartition
from shared.errors import BusError
from shared.queue import index
from shared.queue.actions import OPERATOR, SWEEPS, operator_reply
from shared.runtime.watermark_loop import Ticket
from shared.wire.records import ControlVerb, Delivery, Event, EventKind
from shared.wire.topics import EVENTS, OutRecord


def purged_records(
    delivery: Delivery, applied: Applied, at: float, metrics: DelivererMetrics
) -> list[OutRecord]:
    """The records that end ``delivery`` as ``applied`` (a bounce or a delete) says."""
    action = applied.action
    bounce = action.verb is ControlVerb.QUEUE_BOUNCE
    reply = operator_reply(action.verb, action.why)
    failure = failure_fields(delivery) if bounce else {"headers": b"", "bulk": delivery.bulk}
    metrics.operator.labels("bounced" if bounce else "deleted").inc(len(delivery.rcpt_to))
    events = [
        EVENTS.out(
            Event(
                kind=EventKind.BOUNCED if bounce else EventKind.DELETED,
                message_id=delivery.message_id,
                at=at,
                recipient=rcpt,
                domain=delivery.domain,
                delivery_id=delivery.delivery_id,
                sender=delivery.sender,
                reply=reply,
                attempt=delivery.attempt,
                classification=OPERATOR,
                check=str(action.verb),
                detail=f"{action.target} by {action.by or 'an operator'}",
                tags=delivery.tags,
                stage="deliverer",
                tenant=delivery.tenant,
                by=action.by,
                **failure,
                **(dsn_fields(delivery, rcpt) if bounce else {}),
            )
        )
        for rcpt in delivery.rcpt_to
    ]
    return events + index.ended(delivery)


class TierIntercept:
    """The retry loop's question before it releases or holds a tier record (see the
    module docstring); ``None``: no operator's action concerns it."""

    def __init__(
        self,
        control: QueueControl,
        metrics: DelivererMetrics,
        provider_of: Callable[[str], str],
    ) -> None:
        self._control = control
        self._metrics = metrics
        self._provider_of = provider_of

    def __call__(self, ticket: Ticket[Delivery], at: float) -> list[OutRecord] | None:
        delivery = ticket.item.record
        purge = self._control.purge(delivery)
        if purge is not None:
            return purged_records(delivery, purge, at, self._metrics)
        if delivery.not_before <= at:
            return None  # due: released as usual
        message = ticket.item.message
        written = message.timestamp
        provider = self._provider_of(delivery.domain)
        # A send-at is the sender's own schedule: a flush does not send it early.
        if delivery.send_at <= at and self._control.flushed(delivery, written, provider):
            self._metrics.operator.labels("flushed").inc()
            return [back(delivery)]
        if self._control.sweeping(written, message.tp):
            self._metrics.operator.labels("rewritten").inc()
            return [OutRecord(message.topic, message.key, message.value)]
        return None


log = logging.getLogger("postline.deliverer.operator")


class SweepStart:
    """Starts the retry loop's sweep for a new flush, bounce or delete: it looks at its held
    partitions again at once, or, for an action naming its domains, once their tier
    partitions are known (``Bus.partition_of``; all of them when the bus cannot say)."""

    def __init__(
        self,
        control: QueueControl,
        bus: Bus,
        tiers: Sequence[str],
        release: Callable[[], None],
        spawn: Callable[[Coroutine[Any, Any, None]], object],
    ) -> None:
        self._control = control
        self._bus = bus
        self._tiers = list(tiers)
        self._release = release
        self._spawn = spawn

    def __call__(self, applied: Applied) -> None:
        if applied.action.verb not in SWEEPS:
            return
        if not self._control.needs_scope(applied):
            self._release()
            return
        self._spawn(self._locate(applied))

    async def _locate(self, applied: Applied) -> None:
        partitions: frozenset[TopicPartition] | None
        try:
            partitions = frozenset(
                [
                    TopicPartition(tier, await self._bus.partition_of(tier, domain.encode()))
                    for tier in self._tiers
                    for domain in applied.action.domains
                ]
            )
        except BusError as exc:
            log.warning("sweeping every tier partition", extra={"error": str(exc)})
            partitions = None
        self._control.scope(applied, partitions)
        self._release()
