"""Which events count for what: the deliverer's outcomes, the bouncer's feedback, nothing
twice, DSNs and other kinds not at all; asynchronous feedback attributed by message id."""

from __future__ import annotations

import pytest

from services.reputation.counting import Attribution, contribution
from shared.bounceclass.rules import load_rules
from shared.wire.records import Event, EventKind, ReputationCounts, SmtpReply

TABLE = load_rules()


def deliverer(kind: EventKind, reply: SmtpReply | None = None, **fields: object) -> Event:
    base: dict[str, object] = {
        "message_id": "m1",
        "at": 1000.0,
        "tenant": "shop",
        "sender": "App@News.Shop.Test",
        "provider": "google",
        "mx": "aspmx.l.google.com",
        "stage": "deliverer",
    }
    return Event(kind=kind, reply=reply, **(base | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "counts", "outcome"),
    [
        (deliverer(EventKind.DELIVERED), ReputationCounts(sent=1, delivered=1), "delivered"),
        (
            deliverer(EventKind.BOUNCED, SmtpReply(code=550, enhanced="5.1.1", text="no user")),
            ReputationCounts(sent=1, hard_bounces=1),
            "hard",
        ),
        (
            deliverer(
                EventKind.BOUNCED,
                SmtpReply(code=550, enhanced="5.7.1", text="blocked by policy"),
            ),
            ReputationCounts(sent=1, blocks=1),
            "block",
        ),
        (
            deliverer(EventKind.BOUNCED, SmtpReply(code=552, enhanced="5.2.2", text="full")),
            ReputationCounts(sent=1, soft_bounces=1),
            "soft",
        ),
        (
            deliverer(EventKind.EXPIRED, SmtpReply(code=451, enhanced="4.4.7", text="expired")),
            ReputationCounts(sent=1, soft_bounces=1),
            "soft",
        ),
        (deliverer(EventKind.DEFERRED), ReputationCounts(deferred=1), "deferred"),
    ],
)
def test_deliverer_outcomes(event: Event, counts: ReputationCounts, outcome: str) -> None:
    found = contribution(event, TABLE, Attribution(10))
    assert found is not None
    counted, said = found
    assert (counted.counts, said) == (counts, outcome)
    assert (counted.tenant, counted.domain, counted.provider) == (
        "shop",
        "news.shop.test",
        "google",
    )


@pytest.mark.parametrize(
    "event",
    [
        deliverer(EventKind.ACCEPTED, stage="ingest"),
        deliverer(EventKind.DELIVERED, tags={"dsn_for": "m0"}),  # our DSN back to the sender
        deliverer(EventKind.DEFERRED, stage="bouncer"),  # a delayed DSN: the remote still tries
        deliverer(EventKind.REPUTATION, stage="reputation"),
        deliverer(EventKind.SUPPRESSED, stage="signer"),
    ],
)
def test_what_is_not_counted(event: Event) -> None:
    assert contribution(event, TABLE, Attribution(10)) is None


def test_async_feedback_is_attributed_from_the_delivered_event() -> None:
    attribution = Attribution(10)
    contribution(deliverer(EventKind.DELIVERED), TABLE, attribution)
    bounce = Event(
        kind=EventKind.BOUNCED,
        message_id="m1",
        at=2000.0,
        stage="bouncer",
        classification="hard",
        provider="google",
    )
    found = contribution(bounce, TABLE, attribution)
    assert found is not None
    counted, _ = found
    # Not sent again: the delivered event counted it.
    assert counted.counts == ReputationCounts(hard_bounces=1)
    assert (counted.tenant, counted.domain) == ("shop", "news.shop.test")
    complaint = Event(kind=EventKind.COMPLAINED, message_id="m1", at=3000.0, stage="bouncer")
    found = contribution(complaint, TABLE, attribution)
    assert found is not None and found[0].counts == ReputationCounts(complaints=1)
    unknown = Event(kind=EventKind.COMPLAINED, message_id="m9", at=3000.0, stage="bouncer")
    assert contribution(unknown, TABLE, attribution) is None  # no tenant to count it for
    own = Event(
        kind=EventKind.UNSUBSCRIBED, message_id="m9", at=3000.0, stage="bouncer", tenant="shop"
    )
    found = contribution(own, TABLE, attribution)
    assert found is not None and (found[0].tenant, found[0].domain) == ("shop", "")


def test_attribution_forgets_the_oldest_first() -> None:
    attribution = Attribution(2)
    for n in range(3):
        attribution.remember(f"m{n}", "shop", "shop.test")
    assert attribution.lookup("m0") is None
    assert attribution.lookup("m2") == ("shop", "shop.test")
