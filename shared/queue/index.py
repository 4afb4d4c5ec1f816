"""The deferred queue's index, ``postline.queue``: its entries and their removal.

Why an index. The deferred queue is the retry tiers, and a tier is a log of whole Deliveries
(message data included) read in order by the deliverer's retry loop: answering ``mailq`` from
it would mean reading every waiting message on every call. Postfix answers it from its queue
directories, KumoMTA from its in-memory queues; Postline keeps a compacted table beside the
tiers instead, one small :class:`~shared.wire.records.QueueEntry` per waiting Delivery (key:
delivery id), which any process can read: the CLI, the admin API, with or without a deliverer
running, on Kafka and on the embedded bus alike.

Exactly once. Whoever writes a Delivery to a tier (the deliverer deferring or holding it, the
signer scheduling a send-at) publishes its entry in the same transaction and marks the
Delivery ``indexed``; whoever ends it (delivered, bounced, expired, bounced or deleted by the
operator) publishes the entry's tombstone in the transaction that records the outcome. So the
table is always the deferred queue as of the last commit: never an entry without its
Delivery, never a Delivery in a tier without its entry. A Delivery released from a tier back
to its lane keeps its entry (it is still queued) until its attempt rewrites or removes it.

Does not publish (the writers do, in their transactions) nor read the table (``view.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from shared.wire.records import Delivery, QueueEntry
from shared.wire.topics import QUEUE, OutRecord, Topic

DEFERRED = "deferred"  # an attempt failed temporarily
SCHEDULED = "scheduled"  # waiting for its send-at


@dataclass(frozen=True)
class Copy:
    """A record holding the Delivery with its data: ``postline queue show --body`` reads it."""

    topic: str
    partition: int
    offset: int


def entry(
    delivery: Delivery,
    *,
    tier: str,
    at: float,
    reason: str = DEFERRED,
    detail: str = "",
    provider: str = "",
    source: str = "",
    copy: Copy | None = None,
) -> OutRecord:
    """The index entry of ``delivery`` as written to ``tier`` (its ``not_before`` set)."""
    record = QueueEntry(
        message_id=delivery.message_id,
        delivery_id=delivery.delivery_id,
        domain=delivery.domain,
        recipients=delivery.rcpt_to,
        at=at,
        sender=delivery.sender,
        tenant=delivery.tenant,
        provider=provider,
        source=source,
        bulk=delivery.bulk,
        is_dsn=delivery.is_dsn,
        size=len(delivery.data),
        attempt=delivery.attempt,
        submitted_at=delivery.submitted_at,
        first_attempt_at=delivery.first_attempt_at or 0.0,
        last_attempt_at=delivery.last_attempt_at or 0.0,
        next_attempt=max(delivery.not_before, delivery.send_at),
        expires_at=delivery.expires_at,
        tier=tier,
        reason=reason,
        detail=detail[:500],
        last_reply=delivery.last_reply,
        copy_topic=copy.topic if copy is not None else "",
        copy_partition=copy.partition if copy is not None else -1,
        copy_offset=copy.offset if copy is not None else -1,
    )
    return QUEUE.out(record)


def indexed(delivery: Delivery) -> Delivery:
    """``delivery`` marked as having an entry (what goes to the tier beside it)."""
    return delivery if delivery.indexed else msgspec.structs.replace(delivery, indexed=True)


def ended(delivery: Delivery) -> list[OutRecord]:
    """The entry's tombstone when ``delivery`` has one: to publish with its outcome."""
    return [QUEUE.tombstone(delivery.delivery_id)] if delivery.indexed else []


def scheduled(delivery: Delivery, tier: Topic[Delivery], at: float) -> list[OutRecord]:
    """A send-at Delivery placed in ``tier`` (by the signer, its ``not_before`` the end of
    the first pass): the tier record, marked ``indexed``, and its entry, to publish
    together."""
    waiting = indexed(delivery)
    return [tier.out(waiting), entry(waiting, tier=tier.name, at=at, reason=SCHEDULED)]
