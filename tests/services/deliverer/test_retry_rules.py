"""The retry schedule pinned whole: the delay table, the jitter's source, the tiers, expiry
exactly at the maximum age, the DSN header cut at its limit, the EXPIRED events, and what
the release handler does with a record before, at and past its time (pure logic; the
watermark loop is stood in for by a recorder of what the handler asked of it)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import Any, cast

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from services.deliverer.config import Retry
from services.deliverer.metrics import DelivererMetrics
from services.deliverer.retry import (
    MAX_DSN_HEADERS,
    RetryRelease,
    RetrySchedule,
    expired_events,
    failure_fields,
    header_block,
)
from shared.bus.base import BusMessage
from shared.config import Duration
from shared.runtime.consume import Item
from shared.runtime.watermark_loop import Ticket
from shared.wire.records import Delivery, EventKind, SmtpReply
from shared.wire.topics import EVENTS, OUTBOUND, OUTBOUND_BULK, QUEUE, OutRecord

HOUR = 3600.0


def _delivery(**fields: Any) -> Delivery:
    base = Delivery(
        message_id="m1",
        delivery_id="d1",
        domain="x.test",
        mail_from="s@y.test",
        rcpt_to=("a@x.test", "b@x.test"),
        data=b"Subject: hi\r\n\r\nbody\r\n",
        submitted_at=1000.0,
    )
    return msgspec.structs.replace(base, **fields)


def test_the_delay_table_without_jitter() -> None:
    schedule = RetrySchedule(
        Retry(first_delay=Duration(60), factor=2.0, max_delay=Duration(HOUR), jitter=0.0)
    )
    table = {0: 60, 1: 60, 2: 120, 3: 240, 4: 480, 5: 960, 6: 1920, 7: 3600, 8: 3600, 40: 3600}
    assert {attempt: schedule.delay(attempt) for attempt in table} == table


def test_the_jitter_comes_from_the_given_generator() -> None:
    cfg = Retry(first_delay=Duration(100), factor=3.0, max_delay=Duration(HOUR), jitter=0.3)
    schedule = RetrySchedule(cfg, random.Random(42))
    reference = random.Random(42)
    for attempt in (1, 2, 3):
        expected = 100 * 3.0 ** (attempt - 1) * (1 + reference.uniform(-0.3, 0.3))
        assert schedule.delay(attempt) == expected


def test_tiers_are_sorted_by_duration_whatever_the_config_order() -> None:
    schedule = RetrySchedule(Retry(tiers=("2h", "1m", "30m")))
    assert schedule.topics == ["postline.retry.1m", "postline.retry.30m", "postline.retry.2h"]
    assert (schedule.first_tier_seconds, schedule.last_tier_seconds) == (60.0, 2 * HOUR)
    default = RetrySchedule(Retry())
    assert (default.first_tier_seconds, default.last_tier_seconds) == (60.0, 6 * HOUR)


def test_expiry_is_the_delivery_s_own_when_set() -> None:
    schedule = RetrySchedule(Retry(max_age=Duration(86400)))
    assert schedule.expires_at(_delivery(expires_at=1.0)) == 1.0
    assert schedule.expires_at(_delivery(expires_at=5000.0)) == 5000.0


def test_expiry_counts_from_submission_else_first_attempt_else_now() -> None:
    schedule = RetrySchedule(Retry(max_age=Duration(86400)))
    assert schedule.expires_at(_delivery()) == 1000.0 + 86400
    first = _delivery(submitted_at=0.0, first_attempt_at=2000.0)
    assert schedule.expires_at(first) == 2000.0 + 86400
    before = time.time()
    unknown = schedule.expires_at(_delivery(submitted_at=0.0))
    assert before + 86400 <= unknown <= time.time() + 86400


def test_a_deferral_is_marked_indexed_and_named_by_its_tier() -> None:
    schedule = RetrySchedule(Retry())
    deferral = schedule.defer(_delivery(), 5000.0, 2 * HOUR + 1)
    assert (deferral.tier, deferral.topic) == ("2h", "postline.retry.2h")
    assert deferral.delivery.indexed is True
    assert deferral.delivery.not_before == 5000.0 + 2 * HOUR + 1
    assert OUTBOUND.decode(deferral.record.value or b"") == deferral.delivery


def test_a_held_pass_without_a_queue_entry_is_the_record_alone() -> None:
    schedule = RetrySchedule(Retry())
    [record] = schedule.held(_delivery(send_at=5000.0 + 600, indexed=False), 5000.0)
    assert record.topic == "postline.retry.5m"
    assert OUTBOUND.decode(record.value or b"").not_before == 5000.0 + 300


def test_the_dsn_header_limit_is_64_kib() -> None:
    assert MAX_DSN_HEADERS == 65536
    line = b"X: " + b"x" * 1020 + b"\r\n"  # 1025 bytes
    headers = line * 64  # 65600 bytes: over the limit
    cut = header_block(headers + b"\r\nbody")
    assert cut == line * 63  # cut at the last line end within 65536 bytes


@pytest.mark.parametrize(
    ("data", "limit", "expected"),
    [
        (b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore", 100, b"A: 1\r\nB: 2\r\n"),
        (b"\r\n\r\nbody", 100, b"\r\n"),  # an empty header block: its line end alone
        (b"A: 1\r\nB: 2\r\n", 100, b"A: 1\r\nB: 2\r\n"),  # no body: all of it
        (b"A: 1\r\nB: 2", 100, b"A: 1\r\nB: 2"),  # nor a last line end: still all of it
        (b"A: 1\r\nB: 2", 10, b"A: 1\r\nB: 2"),  # exactly the limit, no line end: whole
        (b"A: 1\r\nB: 2\r\n\r\n", 12, b"A: 1\r\nB: 2\r\n"),  # exactly the limit: whole
        (b"A: 1\r\nB: 2\r\n\r\n", 11, b"A: 1\r\n"),  # one byte over: cut at a line end
        (b"A: 1\r\nB: 2\r\n\r\n", 6, b"A: 1\r\n"),  # the line end is the limit's last byte
        (b"A: 1\r\nB: 2\r\n\r\n", 5, b"A: 1\r"),  # no line end within: cut at the limit
        (b"\nA: 1\r\n\r\n", 3, b"\n"),  # a line end at offset 0 still counts
        (b"ABCDEFGH", 4, b"ABCD"),
    ],
)
def test_header_block_table(data: bytes, limit: int, expected: bytes) -> None:
    assert header_block(data, limit) == expected


def test_failure_fields_carry_the_headers_and_the_lane() -> None:
    head = b"Subject: hi\r\n"
    assert failure_fields(_delivery(bulk=True)) == {
        "headers": head,
        "bulk": True,
        "requiretls": False,
    }
    assert failure_fields(_delivery()) == {"headers": head, "bulk": False, "requiretls": False}
    # RFC 8689 4.3: the DSN of a REQUIRETLS message goes with REQUIRETLS.
    assert failure_fields(_delivery(requiretls=True))["requiretls"] is True


def test_one_expired_event_per_recipient() -> None:
    last = SmtpReply(code=451, enhanced="4.7.1", text="try later")
    delivery = _delivery(attempt=4, tags={"t": "v"}, tenant="acme", bulk=True)
    events = [EVENTS.decode(out.value or b"") for out in expired_events(delivery, 9.0, last)]
    assert [e.recipient for e in events] == ["a@x.test", "b@x.test"]
    event = events[0]
    assert event.kind is EventKind.EXPIRED
    assert event.reply is not None and (event.reply.code, event.reply.enhanced) == (554, "5.4.7")
    assert (event.classification, event.reason, event.stage) == ("expired", "expired", "deliverer")
    assert event.detail == f"last reply: {last}"
    assert (event.attempt, event.tags, event.tenant, event.at) == (4, {"t": "v"}, "acme", 9.0)
    assert (event.headers, event.bulk) == (b"Subject: hi\r\n", True)
    [quiet] = expired_events(_delivery(rcpt_to=("a@x.test",)), 9.0, None)
    assert EVENTS.decode(quiet.value or b"").detail == ""


class _Loop:
    """What the handler asked of the watermark loop for each ticket."""

    def __init__(self) -> None:
        self.finished: list[Sequence[OutRecord]] = []
        self.held: list[float] = []

    def finish(self, ticket: object, outputs: Sequence[OutRecord]) -> bool:
        self.finished.append(outputs)
        return True

    def hold(self, ticket: object, when: float) -> None:
        self.held.append(when)


def _admit(release: RetryRelease, delivery: Delivery) -> _Loop:
    loop = _Loop()
    message = BusMessage("postline.retry.1m", 0, 1, None, None, 0.0)
    release.admit(Ticket(cast(Any, loop), Item(delivery, message), 0.0))
    return loop


def _release(**kwargs: Any) -> tuple[RetryRelease, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = DelivererMetrics(registry)
    schedule = RetrySchedule(Retry(max_age=Duration(86400)))
    return RetryRelease(schedule, metrics, **kwargs), registry


def _expired(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("postline_deliverer_expired_total")


def test_a_record_not_yet_due_holds_its_partition_until_its_time() -> None:
    release, _ = _release()
    due = time.time() + 3600
    loop = _admit(release, _delivery(not_before=due, submitted_at=time.time()))
    assert (loop.held, loop.finished) == ([due], [])


def test_a_due_record_goes_back_to_its_lane() -> None:
    release, registry = _release()
    for bulk, lane in ((False, OUTBOUND), (True, OUTBOUND_BULK)):
        delivery = _delivery(not_before=time.time() - 1, submitted_at=time.time(), bulk=bulk)
        loop = _admit(release, delivery)
        [[out]] = loop.finished
        assert loop.held == []
        assert out.topic == lane.name
        assert lane.decode(out.value or b"").not_before == 0.0
    assert _expired(registry) == 0


def test_past_its_age_a_record_expires_with_its_entry_ended() -> None:
    release, registry = _release()
    expired = _delivery(expires_at=time.time() - 1, indexed=True)
    [outputs] = _admit(release, expired).finished
    kinds = [(o.topic, o.value is None) for o in outputs]
    assert kinds == [(EVENTS.name, False), (EVENTS.name, False), (QUEUE.name, True)]
    assert _expired(registry) == 2


def test_expiry_is_exactly_at_the_expiry_time() -> None:
    release, _ = _release()
    at = 50_000.0
    on_time = _delivery(expires_at=at)
    assert [o.topic for o in release._release(on_time, at)] == [EVENTS.name, EVENTS.name]
    [back] = release._release(on_time, at - 0.5)
    assert back.topic == OUTBOUND.name


def test_a_send_at_still_ahead_goes_on_to_its_next_pass() -> None:
    release, _ = _release()
    at = 50_000.0
    [record] = release._release(_delivery(send_at=at + 120, submitted_at=at), at)
    assert record.topic == "postline.retry.1m"
    [back] = release._release(_delivery(send_at=at, submitted_at=at), at)
    assert back.topic == OUTBOUND.name  # the send-at has come: due now


def test_expiries_are_written_to_the_mail_log_only_when_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="postline.maillog")
    quiet, _ = _release()
    quiet._release(_delivery(expires_at=1.0), 2.0)
    assert caplog.records == []
    logged, _ = _release(mail_log=True)
    logged._release(_delivery(expires_at=1.0), 2.0)
    assert [r.getMessage() for r in caplog.records] == ["expired", "expired"]


def test_an_operator_s_answer_replaces_the_release() -> None:
    answer = [OUTBOUND.tombstone("x")]
    asked: list[float] = []

    def intercept(ticket: Ticket[Delivery], at: float) -> Sequence[OutRecord] | None:
        asked.append(at)
        return answer if ticket.item.record.delivery_id == "d1" else None

    release, _ = _release(intercept=intercept)
    later = time.time() + 3600
    assert _admit(release, _delivery(not_before=later)).finished == [answer]
    passed = _admit(release, _delivery(delivery_id="d2", not_before=later))
    assert (passed.finished, passed.held) == ([], [later])  # None: as usual
    assert len(asked) == 2
