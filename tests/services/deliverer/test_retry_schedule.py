"""The retry schedule: exponential delays with jitter, tiers, expiry (pure logic)."""

from __future__ import annotations

import random

import msgspec
from prometheus_client import CollectorRegistry

from services.deliverer.config import Retry
from services.deliverer.metrics import DelivererMetrics
from services.deliverer.retry import RetryRelease, RetrySchedule
from shared.bus.base import BusMessage
from shared.runtime.consume import Item
from shared.wire.records import Delivery
from shared.wire.topics import OUTBOUND, OUTBOUND_BULK, QUEUE


def test_exponential_delay_with_bounded_jitter() -> None:
    schedule = RetrySchedule(
        Retry(first_delay=60, factor=2.0, max_delay=3600, jitter=0.2), random.Random(7)
    )
    for attempt, base in [(1, 60), (2, 120), (3, 240), (7, 3600), (30, 3600)]:
        for _ in range(50):
            assert base * 0.8 <= schedule.delay(attempt) <= base * 1.2


def test_tier_is_the_longest_not_longer_than_the_delay() -> None:
    schedule = RetrySchedule(Retry())  # tiers 1m 5m 30m 2h 6h
    assert schedule.tier_for(10).name == "postline.retry.1m"
    assert schedule.tier_for(299).name == "postline.retry.1m"
    assert schedule.tier_for(300).name == "postline.retry.5m"
    assert schedule.tier_for(3 * 3600).name == "postline.retry.2h"
    assert schedule.tier_for(10 * 86400).name == "postline.retry.6h"


def test_defer_sets_not_before_and_expiry_defaults_to_max_age() -> None:
    schedule = RetrySchedule(Retry(max_age=86400))
    delivery = Delivery(
        message_id="m",
        delivery_id="d",
        domain="x.test",
        mail_from="",
        rcpt_to=("a@x.test",),
        data=b"",
        submitted_at=1000.0,
    )
    assert schedule.expires_at(delivery) == 1000.0 + 86400
    deferral = schedule.defer(delivery, 2000.0, 400.0)
    assert deferral.tier == "5m"
    assert deferral.record.topic == "postline.retry.5m"
    assert OUTBOUND.decode(deferral.record.value or b"").not_before == 2400.0


def test_a_record_whose_release_failed_goes_back_to_its_own_lane() -> None:
    release = RetryRelease(RetrySchedule(Retry()), DelivererMetrics(CollectorRegistry()))
    base = Delivery(
        message_id="m",
        delivery_id="d",
        domain="x.test",
        mail_from="",
        rcpt_to=("a@x.test",),
        data=b"",
        not_before=5.0,
    )
    message = BusMessage("postline.retry.1m", 0, 7, None, None, 0.0)
    for bulk, lane in ((False, OUTBOUND), (True, OUTBOUND_BULK)):
        record = msgspec.structs.replace(base, bulk=bulk)
        [out] = release.failed(Item(record, message), RuntimeError("boom"))
        assert out.topic == lane.name
        assert lane.decode(out.value or b"") == msgspec.structs.replace(record, not_before=0.0)


def test_a_send_at_pass_that_ends_early_goes_on_to_the_next_pass_with_its_entry() -> None:
    schedule = RetrySchedule(Retry(max_age=86400))  # tiers 1m 5m 30m 2h 6h
    send_at = 10_000.0 + 3 * 3600
    held = Delivery(
        message_id="m",
        delivery_id="d",
        domain="x.test",
        mail_from="",
        rcpt_to=("a@x.test",),
        data=b"",
        submitted_at=1000.0,
        send_at=send_at,
        indexed=True,
    )
    # The expiry counts from the send-at, not from acceptance.
    assert schedule.expires_at(held) == send_at + 86400
    record, entry = schedule.held(held, 10_000.0)
    assert record.topic == "postline.retry.2h"
    assert OUTBOUND.decode(record.value or b"").not_before == 10_000.0 + 7200
    queued = QUEUE.decode(entry.value or b"")
    assert (queued.reason, queued.tier, queued.next_attempt) == (
        "scheduled",
        "postline.retry.2h",
        send_at,
    )
    # The last pass ends at the send-at itself.
    [last, _] = schedule.held(held, send_at - 30)
    assert last.topic == "postline.retry.1m"
    assert OUTBOUND.decode(last.value or b"").not_before == send_at
