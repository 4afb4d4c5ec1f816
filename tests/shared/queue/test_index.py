"""The deferred queue's index entries: what an entry keeps, and when a tombstone is due."""

from __future__ import annotations

import msgspec

from shared.queue import index
from shared.wire.records import Delivery, SmtpReply
from shared.wire.topics import QUEUE, retry_topic

REPLY = SmtpReply(code=451, enhanced="4.3.0", text="try later")


def waiting(**fields: object) -> Delivery:
    values: dict[str, object] = {
        "message_id": "m1",
        "delivery_id": "d1",
        "domain": "a.test",
        "mail_from": "bounce@b.test",
        "rcpt_to": ("x@a.test", "y@a.test"),
        "data": b"Subject: hi\r\n\r\nbody\r\n",
        "sender": "app@b.test",
        "tenant": "acme",
        "attempt": 2,
        "submitted_at": 100.0,
        "first_attempt_at": 110.0,
        "last_attempt_at": 200.0,
        "not_before": 500.0,
        "expires_at": 9000.0,
        "last_reply": REPLY,
    }
    values.update(fields)
    return Delivery(**values)  # type: ignore[arg-type]


def test_an_entry_keeps_the_envelope_and_the_state_but_no_data() -> None:
    copy = index.Copy("postline.outbound", 3, 41)
    record = index.entry(
        waiting(),
        tier="postline.retry.5m",
        at=200.0,
        provider="google",
        source="192.0.2.1",
        copy=copy,
    )
    assert (record.topic, record.key) == (QUEUE.name, b"d1")
    entry = QUEUE.decode(record.value or b"")
    assert (entry.message_id, entry.recipients, entry.sender, entry.tenant) == (
        "m1",
        ("x@a.test", "y@a.test"),
        "app@b.test",
        "acme",
    )
    assert (entry.attempt, entry.next_attempt, entry.expires_at, entry.last_reply) == (
        2,
        500.0,
        9000.0,
        REPLY,
    )
    assert (entry.size, entry.reason, entry.tier) == (21, index.DEFERRED, "postline.retry.5m")
    assert (entry.copy_topic, entry.copy_partition, entry.copy_offset) == (
        "postline.outbound",
        3,
        41,
    )
    assert b"body" not in (record.value or b"")


def test_only_an_indexed_delivery_has_an_entry_to_remove() -> None:
    assert index.ended(waiting()) == []
    (tombstone,) = index.ended(waiting(indexed=True))
    assert (tombstone.topic, tombstone.key, tombstone.value) == (QUEUE.name, b"d1", None)


def test_a_scheduled_delivery_waits_until_its_send_at_with_its_entry() -> None:
    tier = retry_topic("1h")
    record, entry_record = index.scheduled(waiting(send_at=4000.0, attempt=0), tier, at=50.0)
    assert record.topic == tier.name
    assert tier.decode(record.value or b"").indexed
    entry = QUEUE.decode(entry_record.value or b"")
    assert (entry.reason, entry.next_attempt, entry.tier) == (index.SCHEDULED, 4000.0, tier.name)


def test_marking_indexed_is_idempotent() -> None:
    once = index.indexed(waiting())
    assert once.indexed and index.indexed(once) is once
    assert msgspec.structs.replace(once, indexed=False) == waiting()
