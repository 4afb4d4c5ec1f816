"""Reading the queue: the summary of the index and the live state, listing, resolving ids,
checking targets, and finding a Delivery's data (on a real embedded bus)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig
from shared.errors import QueueInvalid, QueueNotFound
from shared.queue import view
from shared.queue.targets import parse_target
from shared.wire.records import (
    Delivery,
    QueueEntry,
    QueueLoad,
    QueueSnapshot,
    SmtpReply,
)
from shared.wire.topics import OUTBOUND, QUEUE, QUEUE_LIVE

NOW = 1_700_000_000.0


def entry(delivery_id: str, **fields: object) -> QueueEntry:
    values: dict[str, object] = {
        "message_id": "m-" + delivery_id,
        "delivery_id": delivery_id,
        "domain": "a.test",
        "recipients": ("x@a.test",),
        "at": NOW - 60,
        "tenant": "acme",
        "provider": "google",
        "submitted_at": NOW - 600,
        "tier": "postline.retry.5m",
        "reason": "deferred",
    }
    values.update(fields)
    return QueueEntry(**values)  # type: ignore[arg-type]


def snapshot(*loads: QueueLoad, at: float = NOW, stopped: bool = False) -> QueueSnapshot:
    return QueueSnapshot(
        instance="d-1", at=at, interval=5.0, loads=loads, pending={"bulk": 3}, stopped=stopped
    )


def test_the_summary_adds_the_index_and_the_windows_per_domain() -> None:
    entries = [
        entry("1", last_reply=SmtpReply(code=451, text="greylisted"), last_attempt_at=NOW - 50),
        entry("2", tier="postline.retry.1h", submitted_at=NOW - 7200),
        entry("3", reason="suspended", detail="suspended: domain:a.test by cli:ann"),
        entry("4", domain="b.test", reason="scheduled", tenant=""),
    ]
    live = snapshot(
        QueueLoad(
            domain="a.test",
            provider="google",
            tenant="acme",
            window=4,
            in_flight=2,
            oldest=NOW - 30,
            last_error="421 slow down",
            last_error_at=NOW - 5,
            throttled_until=NOW + 60,
        ),
    )
    summary = view.summary(entries, [live])
    a, b = summary.rows
    assert (a.name, a.window, a.in_flight, a.deferred, a.held, a.total) == (
        "a.test",
        4,
        2,
        {"5m": 1, "1h": 1},
        1,
        9,
    )
    assert (a.oldest, a.last_error, a.throttled_until) == (NOW - 7200, "421 slow down", NOW + 60)
    assert (b.name, b.scheduled, b.total) == ("b.test", 1, 1)
    assert summary.tiers == ["5m", "1h"]  # shortest first
    assert (summary.pending, summary.replicas) == ({"bulk": 3}, 1)
    by_tenant = view.summary(entries, [live], by="tenant")
    assert [(r.name, r.total) for r in by_tenant.rows] == [("acme", 9), ("default", 1)]
    with pytest.raises(QueueInvalid, match="expected one of domain"):
        view.summary(entries, [], by="recipient")


def test_select_and_resolve() -> None:
    entries = [
        entry("abcdef01"),
        entry("abcdef02", reason="suspended"),
        entry("ffff99", domain="b.test"),
    ]
    assert [e.delivery_id for e in view.select(entries, domain="a.test")] == [
        "abcdef01",
        "abcdef02",
    ]
    assert [e.delivery_id for e in view.select(entries, deferred=True)] == ["abcdef01", "ffff99"]
    assert view.select(entries, tenant="default") == []
    assert [e.delivery_id for e in view.resolve(entries, "m-abcdef01")] == ["abcdef01"]
    assert [e.delivery_id for e in view.resolve(entries, "ffff99")] == ["ffff99"]  # a delivery id
    assert [e.delivery_id for e in view.resolve(entries, "m-ffff9")] == ["ffff99"]  # a prefix
    with pytest.raises(QueueInvalid, match="ambiguous"):
        view.resolve(entries, "abcdef0")
    with pytest.raises(QueueNotFound, match="no queued message 'm-fff'"):
        view.resolve(entries, "m-fff")  # shorter than a prefix may be
    with pytest.raises(QueueNotFound):
        view.resolve(entries, "0000000000")


def test_check_target_needs_something_queued_for_it() -> None:
    entries = [entry("1")]
    live = snapshot(QueueLoad(domain="c.test", tenant="shop", window=1))
    for text in ("domain:a.test", "tenant:acme", "provider:google", "domain:c.test", "all"):
        view.check_target(entries, [live], parse_target(text))
    for text in ("domain:nowhere.test", "tenant:other", "message:m-9"):
        with pytest.raises(QueueNotFound, match="nothing queued for"):
            view.check_target(entries, [live], parse_target(text))


async def test_reading_the_tables_and_a_deliverys_data(tmp_path: Path) -> None:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=1))
    await bus.start()
    try:
        delivery = Delivery(
            message_id="m1",
            delivery_id="d1",
            domain="a.test",
            mail_from="",
            rcpt_to=("x@a.test",),
            data=b"Subject: hi\r\nFrom: a@b.test\r\n\r\nthe body\r\n",
        )
        await bus.publish([OUTBOUND.out(delivery)])
        located = entry(
            "d1", message_id="m1", copy_topic=OUTBOUND.name, copy_partition=0, copy_offset=0
        )
        elsewhere = entry(
            "d1", message_id="m1", copy_topic=OUTBOUND.name, copy_partition=0, copy_offset=7
        )
        await bus.publish(
            [
                QUEUE.out(located),
                QUEUE.out(entry("d2")),
                QUEUE.tombstone("d2"),
                QUEUE_LIVE.out(snapshot(at=NOW - 1)),
                QUEUE_LIVE.out(QueueSnapshot(instance="gone", at=NOW - 60, interval=5.0)),
                QUEUE_LIVE.out(
                    QueueSnapshot(instance="stopped", at=NOW, interval=5.0, stopped=True)
                ),
            ]
        )
        assert [e.delivery_id for e in await view.read_entries(bus)] == ["d1"]
        assert [s.instance for s in await view.read_snapshots(bus, NOW)] == ["d-1"]
        copy = await view.read_copy(bus, located)
        assert copy is not None and copy.data == delivery.data
        assert view.header_text(copy.data) == "Subject: hi\nFrom: a@b.test"
        assert await view.read_copy(bus, elsewhere) is None  # gone: nothing there
        assert await view.read_copy(bus, entry("d9")) is None  # never located
    finally:
        await bus.close()
