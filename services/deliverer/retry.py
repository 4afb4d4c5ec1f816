"""Retry tiers: when a deferred Delivery is tried again, and the loop that sends it back.

Owns: :class:`RetrySchedule` (exponential delay with jitter per attempt, the tier topic
``postline.retry.<tier>`` for a delay, expiry past the maximum age, RFC 5321 4.5.4.1) and
:class:`RetryLoop`, which reads every tier as its own consumer group, pauses a tier partition
until its head is due, then moves due records back to ``postline.outbound`` (or, past their
age, publishes EXPIRED events) in one transaction with the tier offsets. Does not deliver.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from services.deliverer.config import Retry
from services.deliverer.metrics import DelivererMetrics
from shared.bus.base import BusMessage, Consumer, TopicPartition
from shared.config import Duration
from shared.errors import BusError, DecodeError
from shared.records import DeadLetter, Delivery, Event, EventKind, SmtpReply, now
from shared.topics import DEAD, EVENTS, OUTBOUND, OutRecord, Topic, retry_topic

log = logging.getLogger("postline.deliverer.retry")

RETRY_GROUP = "postline-deliverer-retry"
#: RFC 3463 4.4.7: "delivery time expired".
EXPIRED_REPLY = SmtpReply(code=554, enhanced="5.4.7", text="delivery time expired")


@dataclass(frozen=True)
class Deferral:
    """Where a deferred Delivery goes: the tier topic and the record with ``not_before``."""

    tier: str
    record: OutRecord


class RetrySchedule:
    """The exponential retry schedule and the tier topics."""

    def __init__(self, cfg: Retry, rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self._rng = rng or random.Random()
        tiers = sorted(((Duration.parse(t), t) for t in cfg.tiers), key=lambda pair: pair[0])
        self._tiers: list[tuple[float, Topic[Delivery]]] = [(d, retry_topic(t)) for d, t in tiers]

    @property
    def first_tier_seconds(self) -> float:
        """The shortest tier's duration (the least a shed Delivery waits)."""
        return self._tiers[0][0]

    @property
    def topics(self) -> list[str]:
        """Every tier topic name."""
        return [topic.name for _, topic in self._tiers]

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), with jitter."""
        base = self.cfg.first_delay * self.cfg.factor ** max(0, attempt - 1)
        base = min(base, self.cfg.max_delay)
        return base * (1 + self._rng.uniform(-self.cfg.jitter, self.cfg.jitter))

    def tier_for(self, delay: float) -> Topic[Delivery]:
        """The longest tier not longer than ``delay`` (the shortest when all are longer), so a
        record never waits in its tier much past its ``not_before``."""
        chosen = self._tiers[0][1]
        for seconds, topic in self._tiers:
            if seconds <= delay:
                chosen = topic
        return chosen

    def expires_at(self, delivery: Delivery) -> float:
        """When ``delivery`` expires: its own ``expires_at`` or submission + max age."""
        if delivery.expires_at > 0:
            return delivery.expires_at
        start = delivery.submitted_at or delivery.first_attempt_at or now()
        return start + self.cfg.max_age

    def defer(self, delivery: Delivery, at: float, delay: float) -> Deferral:
        """The retry record for ``delivery`` (already updated by the caller) due after ``delay``."""
        topic = self.tier_for(delay)
        record = msgspec.structs.replace(delivery, not_before=at + delay)
        return Deferral(topic.name.rsplit(".", 1)[-1], topic.out(record))


#: Most bytes of the original header block a BOUNCED/EXPIRED event carries, for the DSN the
#: bouncer sends to the sender (RFC 3462 text/rfc822-headers); the rest is cut at a line end.
MAX_DSN_HEADERS = 64 * 1024


def header_block(data: bytes, limit: int = MAX_DSN_HEADERS) -> bytes:
    """The message's header block (up to the first empty line), at most ``limit`` bytes."""
    end = data.find(b"\r\n\r\n")
    block = data[: end + 2] if end >= 0 else data
    if len(block) > limit:
        cut = block.rfind(b"\n", 0, limit)
        block = block[: cut + 1] if cut >= 0 else block[:limit]
    return block


def failure_fields(delivery: Delivery) -> dict[str, Any]:
    """What a final-failure event needs for the bouncer's DSN: the headers and bulk flag."""
    return {"headers": header_block(delivery.data), "bulk": delivery.bulk}


def expired_events(delivery: Delivery, at: float, reply: SmtpReply | None) -> list[OutRecord]:
    """One EXPIRED event per recipient (the bouncer handles it like a bounce)."""
    failure = failure_fields(delivery)
    return [
        EVENTS.out(
            Event(
                kind=EventKind.EXPIRED,
                message_id=delivery.message_id,
                at=at,
                recipient=rcpt,
                domain=delivery.domain,
                delivery_id=delivery.delivery_id,
                sender=delivery.sender,
                reply=EXPIRED_REPLY,
                attempt=delivery.attempt,
                classification="expired",
                detail=f"last reply: {reply}" if reply else "",
                tags=delivery.tags,
                stage="deliverer",
                **failure,
            )
        )
        for rcpt in delivery.rcpt_to
    ]


class RetryLoop:
    """Moves due records from the retry tiers back to ``postline.outbound``."""

    def __init__(
        self,
        consumer: Consumer,
        schedule: RetrySchedule,
        metrics: DelivererMetrics,
        poll: float = 0.5,
    ) -> None:
        self._consumer = consumer
        self._schedule = schedule
        self._metrics = metrics
        self._poll = poll
        self._resume_at: dict[TopicPartition, float] = {}

    async def run(self, stopping: asyncio.Event) -> None:
        """Until ``stopping``: fetch, move what is due, pause what is not."""
        while not stopping.is_set():
            self._resume_due(time.time())
            messages = await self._consumer.fetch(500, timeout=self._fetch_timeout())
            if not messages:
                continue
            try:
                await self._move(messages)
            except BusError as exc:
                # Nothing moved; the bus rewound to the committed offsets, paused partitions
                # stay paused until their head is due (``_resume_at`` is kept).
                log.warning("retry transaction failed; will retry", extra={"error": str(exc)})
                await asyncio.sleep(self._poll)

    def _fetch_timeout(self) -> float:
        if not self._resume_at:
            return self._poll
        return max(0.01, min(self._poll, min(self._resume_at.values()) - time.time()))

    def _resume_due(self, at: float) -> None:
        due = [tp for tp, when in self._resume_at.items() if when <= at]
        for tp in due:
            del self._resume_at[tp]
        if due:
            self._consumer.resume(*due)

    async def _move(self, messages: list[BusMessage]) -> None:
        at = time.time()
        outputs: list[OutRecord] = []
        offsets: dict[TopicPartition, int] = {}
        waiting: dict[TopicPartition, tuple[int, float]] = {}
        for message in messages:
            if message.tp in waiting:
                continue  # the partition's head is not due: everything after it waits too
            try:
                delivery = OUTBOUND.decode(message.value or b"")
            except DecodeError as exc:
                outputs.append(dead_letter(message, str(exc), self._consumer.group, at))
                offsets[message.tp] = message.offset + 1
                continue
            if delivery.not_before > at:
                waiting[message.tp] = (message.offset, delivery.not_before)
                continue
            outputs.extend(self._release(delivery, at))
            offsets[message.tp] = message.offset + 1
        if outputs or offsets:
            async with self._consumer.transaction() as txn:
                for record in outputs:
                    await txn.publish(record)
                txn.commit_offsets(offsets)
        for tp, (offset, due) in waiting.items():
            await self._consumer.seek(tp, offset)
            self._consumer.pause(tp)
            self._resume_at[tp] = due

    def _release(self, delivery: Delivery, at: float) -> list[OutRecord]:
        if at >= self._schedule.expires_at(delivery):
            self._metrics.expired.inc(len(delivery.rcpt_to))
            return expired_events(delivery, at, delivery.last_reply)
        return [OUTBOUND.out(msgspec.structs.replace(delivery, not_before=0.0))]


def dead_letter(message: BusMessage, reason: str, group: str, at: float) -> OutRecord:
    """The dead-letter record of an input record that cannot be used."""
    return DEAD.out(
        DeadLetter(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            reason=reason,
            group=group,
            at=at,
        )
    )
