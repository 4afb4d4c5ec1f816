"""Retry tiers for webhooks: when an event is tried again, and when it is given up.

Owns :class:`Schedule` (exponential delay with jitter per attempt, the tier topic
``postline.webhooks.retry.<tier>`` for a delay, the dead letter past ``max_age``). The age
counts from the first failed attempt; the last wait is cut so one attempt is made at about
``max_age``, and a failure then makes the event a dead letter on ``postline.dead`` (with a
``webhook`` event, classification ``dead_lettered``) that ``postline webhooks redrive``
puts back on the first tier with its age reset. A record waits in the longest tier not
longer than its delay, so records in one tier partition fall due in about the order they
were written and a held head never hides a record due much earlier.
"""

from __future__ import annotations

import random

import msgspec

from services.webhooks.config import WebhooksConfig
from services.webhooks.payload import Item
from shared.bus.base import BusMessage
from shared.config import Duration
from shared.wire.records import DeadLetter, Event, EventKind, WebhookAttempt
from shared.wire.topics import DEAD, EVENTS, OutRecord, Topic, webhook_retry_topic

#: The consumer group of the retry tiers.
RETRY_GROUP = "postline-webhooks-retry"


def attempt_of(tenant: str, endpoint: str, item: Item) -> WebhookAttempt:
    """A fresh record for ``item`` bound for ``endpoint`` (no attempt made yet)."""
    return WebhookAttempt(
        tenant=tenant,
        endpoint=endpoint,
        event_id=item.event_id,
        payload=item.payload,
        event_at=item.event_at,
    )


def item_of_attempt(attempt: WebhookAttempt) -> Item:
    """The item a retry record carries."""
    return Item(attempt.event_id, attempt.payload, attempt.event_at)


class Schedule:
    """The exponential retry schedule and the tier topics."""

    def __init__(self, cfg: WebhooksConfig, rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self._rng = rng or random.Random()
        tiers = sorted(((Duration.parse(t), t) for t in cfg.tiers), key=lambda pair: pair[0])
        self.tiers: list[tuple[float, str, Topic[WebhookAttempt]]] = [
            (d, t, webhook_retry_topic(t)) for d, t in tiers
        ]

    @property
    def topics(self) -> list[str]:
        """Every tier topic name."""
        return [topic.name for _, _, topic in self.tiers]

    @property
    def first(self) -> Topic[WebhookAttempt]:
        """The shortest tier (replays and redrives start there)."""
        return self.tiers[0][2]

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), with jitter."""
        cfg = self.cfg
        base = min(cfg.first_delay * cfg.factor ** max(0, attempt - 1), cfg.max_delay)
        return base * (1 + self._rng.uniform(-cfg.jitter, cfg.jitter))

    def tier_for(self, delay: float) -> tuple[str, Topic[WebhookAttempt]]:
        """The longest tier not longer than ``delay`` (the shortest when all are longer)."""
        chosen = self.tiers[0]
        for tier in self.tiers:
            if tier[0] <= delay:
                chosen = tier
        return chosen[1], chosen[2]

    def expired(self, attempt: WebhookAttempt, at: float) -> bool:
        """Past ``max_age`` since its first failure."""
        return bool(attempt.first_at) and at - attempt.first_at >= self.cfg.max_age

    def after_failure(
        self, attempt: WebhookAttempt, at: float, error: str, *, attempted: bool
    ) -> tuple[str, WebhookAttempt]:
        """The tier and record after a failure (``attempted``: a request was made, so the
        attempt counts towards the back-off)."""
        count = attempt.attempt + (1 if attempted else 0)
        first_at = attempt.first_at or at
        delay = self.delay(max(1, count))
        # The last wait ends at max_age, so the last attempt is made then, not a tier later.
        delay = max(0.0, min(delay, first_at + self.cfg.max_age - at))
        tier, _ = self.tier_for(delay)
        record = msgspec.structs.replace(
            attempt, attempt=count, first_at=first_at, not_before=at + delay, error=error[:500]
        )
        return tier, record

    def held(self, attempt: WebhookAttempt, at: float) -> tuple[str, WebhookAttempt]:
        """The tier and record of a paused endpoint's event: back in ``paused_hold``,
        without an attempt (its age still counts)."""
        hold = float(self.cfg.paused_hold)
        tier, _ = self.tier_for(hold)
        first_at = attempt.first_at or at
        return tier, msgspec.structs.replace(
            attempt, first_at=first_at, not_before=at + hold, error="endpoint paused"
        )

    def out(self, tier: str, attempt: WebhookAttempt) -> OutRecord:
        """``attempt`` on the topic of ``tier``."""
        return webhook_retry_topic(tier).out(attempt)


def dead_letter(
    attempt: WebhookAttempt, message: BusMessage, at: float, *, group: str
) -> list[OutRecord]:
    """The dead letter of an event given up, and the operator's ``webhook`` event."""
    reason = f"webhook not acknowledged within max_age after {attempt.attempt} attempts"
    if attempt.error:
        reason += f"; last: {attempt.error}"
    letter = DeadLetter(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        reason=reason,
        group=group,
        at=at,
    )
    event = Event(
        kind=EventKind.WEBHOOK,
        at=at,
        tenant=attempt.tenant,
        classification="dead_lettered",
        detail=f"{attempt.endpoint}: event {attempt.event_id}: {reason}",
        by="webhooks",
        stage="webhooks",
    )
    return [DEAD.out(letter), OutRecord(EVENTS.name, attempt.tenant.encode(), EVENTS.encode(event))]


def revived(attempt: WebhookAttempt) -> WebhookAttempt:
    """``attempt`` as a redrive or replay puts it back: due at once, its age reset."""
    return msgspec.structs.replace(attempt, attempt=0, first_at=0.0, not_before=0.0, error="")
