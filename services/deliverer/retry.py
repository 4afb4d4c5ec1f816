"""Retry tiers: when a deferred Delivery is tried again, and the loop that sends it back.

Owns: :class:`RetrySchedule` (exponential delay with jitter per attempt, the tier topic
``postline.retry.<tier>`` for a delay, expiry past the maximum age, RFC 5321 4.5.4.1) and
:class:`RetryRelease`, the handler (on ``shared.runtime.watermark_loop``, group
``postline-deliverer-retry`` over every tier) that holds a tier partition until its head is
due, then moves due records back to the lane they came from (``postline.outbound``, or
``postline.outbound.bulk`` for bulk mail: both lanes share the tiers, and a retried newsletter
must not come back ahead of password resets) or, past their age, publishes EXPIRED events,
committed with the tier offsets. A Delivery held for its send-at (put in a tier by the
signer) whose pass ended before the send-at goes on to its next pass (``shared.sendat``)
instead. Does not deliver.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from services.deliverer import maillog
from services.deliverer.config import Retry
from services.deliverer.metrics import DelivererMetrics
from shared.bounceclass.reasons import Reason
from shared.bus.base import TopicPartition
from shared.config import Duration
from shared.queue import index
from shared.runtime.consume import Item
from shared.runtime.watermark_loop import Ticket
from shared.sendat import next_pass
from shared.wire.records import Delivery, Event, EventKind, SmtpReply, now
from shared.wire.topics import EVENTS, OutRecord, Topic, lane_of, retry_topic

log = logging.getLogger("postline.deliverer.retry")

RETRY_GROUP = "postline-deliverer-retry"
#: RFC 3463 4.4.7: "delivery time expired".
EXPIRED_REPLY = SmtpReply(code=554, enhanced="5.4.7", text="delivery time expired")


@dataclass(frozen=True)
class Deferral:
    """Where a deferred Delivery goes: the tier topic and the record with ``not_before``
    (marked ``indexed``: its ``postline.queue`` entry is published with it, report.py)."""

    tier: str
    record: OutRecord
    delivery: Delivery  # what the record holds
    topic: str  # the tier topic's name


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
    def last_tier_seconds(self) -> float:
        """The longest tier's duration: a record due later than that would hold everything
        behind it in its tier partition, so long waits are cut into passes of this length."""
        return self._tiers[-1][0]

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
        """When ``delivery`` expires: its own ``expires_at`` or submission (or its send-at,
        when later: the age counts from when the sender wanted it sent) + max age."""
        if delivery.expires_at > 0:
            return delivery.expires_at
        start = delivery.submitted_at or delivery.first_attempt_at or now()
        return max(start, delivery.send_at) + self.cfg.max_age

    def defer(self, delivery: Delivery, at: float, delay: float) -> Deferral:
        """The retry record for ``delivery`` (already updated by the caller) due after ``delay``."""
        topic = self.tier_for(delay)
        record = msgspec.structs.replace(delivery, not_before=at + delay, indexed=True)
        return Deferral(topic.name.rsplit(".", 1)[-1], topic.out(record), record, topic.name)

    def held(self, delivery: Delivery, at: float) -> list[OutRecord]:
        """The next pass of a Delivery whose send-at is still ahead (``shared.sendat``): in
        the tier that fits what remains, for no longer than that tier; its queue entry
        (when it has one) names the new tier."""
        topic, until = next_pass(self._tiers, at, delivery.send_at)
        waiting = msgspec.structs.replace(delivery, not_before=until)
        entry = [index.entry(waiting, tier=topic.name, at=at, reason=index.SCHEDULED)]
        return [topic.out(waiting), *(entry if waiting.indexed else [])]


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
    """What a final-failure event needs for the bouncer's DSN: the headers, the bulk flag
    and REQUIRETLS (RFC 8689 4.3: the DSN is protected as the message was)."""
    return {
        "headers": header_block(delivery.data),
        "bulk": delivery.bulk,
        "requiretls": delivery.requiretls,
    }


def dsn_fields(delivery: Delivery, rcpt: str) -> dict[str, Any]:
    """The sender's DSN request for ``rcpt`` (RFC 3461), which the bouncer's notice to the
    sender honours: NOTIFY, ORCPT, RET and ENVID."""
    dsn = delivery.dsn.get(rcpt)
    return {
        "dsn_notify": dsn.notify if dsn is not None else (),
        "dsn_orcpt": dsn.orcpt if dsn is not None else "",
        "dsn_ret": delivery.dsn_ret,
        "dsn_envid": delivery.dsn_envid,
    }


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
                reason=str(Reason.EXPIRED),
                detail=f"last reply: {reply}" if reply else "",
                tags=delivery.tags,
                stage="deliverer",
                tenant=delivery.tenant,
                **failure,
                **dsn_fields(delivery, rcpt),
            )
        )
        for rcpt in delivery.rcpt_to
    ]


class RetryRelease:
    """The retry tiers' handler on the watermark loop: due records go back to their lane
    (or expire); a record not yet due holds its tier partition there."""

    def __init__(
        self,
        schedule: RetrySchedule,
        metrics: DelivererMetrics,
        *,
        mail_log: bool = False,
        intercept: Intercept | None = None,
    ) -> None:
        self._schedule = schedule
        self._metrics = metrics
        self._mail_log = mail_log  # write the expiries' mail log lines (maillog.py)
        self._intercept = intercept  # operators' actions (operator.py); None: none

    def admit(self, ticket: Ticket[Delivery]) -> None:
        """Release the record if it is due, else wait for it (and what follows it), unless
        an operator's action says otherwise."""
        delivery = ticket.item.record
        at = time.time()
        if self._intercept is not None:
            outputs = self._intercept(ticket, at)
            if outputs is not None:
                ticket.finish(outputs)
                return
        if delivery.not_before > at:
            ticket.hold_until(delivery.not_before)
            return
        ticket.finish(self._release(delivery, at))

    def failed(self, item: Item[Delivery], exc: Exception) -> Sequence[OutRecord]:
        """Releasing raised: send the record back to its lane as it is; the deliverer tries it."""
        return [back(item.record)]

    def revoked(self, partitions: Collection[TopicPartition]) -> None:
        """Nothing is queued here: held partitions are the loop's."""

    async def drain(self, timeout: float) -> None:
        """Nothing runs here between fetches."""

    def flushed(self) -> None:
        """No housekeeping."""

    def _release(self, delivery: Delivery, at: float) -> list[OutRecord]:
        if at >= self._schedule.expires_at(delivery):
            self._metrics.expired.inc(len(delivery.rcpt_to))
            if self._mail_log:
                maillog.write(maillog.expired_lines(delivery, at))
            return expired_events(delivery, at, delivery.last_reply) + index.ended(delivery)
        if delivery.send_at > at:
            # A pass of a send-at wait ended before the send-at: on to the next pass.
            return self._schedule.held(delivery, at)
        return [back(delivery)]


#: Asked first about each tier record (operator.py): its outputs, or None to go on as usual.
Intercept = Callable[[Ticket[Delivery], float], "Sequence[OutRecord] | None"]


def back(delivery: Delivery) -> OutRecord:
    """``delivery`` due again, on the lane it came from (by ``Delivery.bulk``)."""
    return lane_of(delivery).out(msgspec.structs.replace(delivery, not_before=0.0))
