"""Deferrals through the retry tiers, back to outbound, and expiry (embedded bus)."""

from __future__ import annotations

import time
from pathlib import Path

from shared.wire.records import EventKind
from shared.wire.topics import DEAD, OUTBOUND, OUTBOUND_BULK, OutRecord
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.smtpsink import DROP, SmtpSink, free_port
from tests.services.deliverer.harness import (
    deliverer_section,
    delivery,
    read_topic,
    running_deliverer,
)


async def test_dropped_mid_data_is_deferred_retried_and_delivered_once(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        sink.script_data(DROP)
        await d.send(delivery("a@dest.test"))
        (deferred,) = await d.wait_events(EventKind.DEFERRED, 1)
        assert deferred.reply.enhanced == "4.4.2"  # type: ignore[union-attr]
        (delivered,) = await d.wait_events(EventKind.DELIVERED, 1)
        assert delivered.attempt == 2
        await d.settle()
        assert len(sink.messages) == 1 and len(sink.dropped) == 1
        assert len(d.of(EventKind.DELIVERED)) == 1


async def test_a_deferred_bulk_delivery_comes_back_in_the_bulk_lane(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        sink.script_rcpt("news@dest.test", "451 4.3.0 Try later")
        await d.send(delivery("news@dest.test", bulk=True))
        (deferred,) = await d.wait_events(EventKind.DEFERRED, 1)
        (delivered,) = await d.wait_events(EventKind.DELIVERED, 1)
        await d.settle()
        consumed = {
            topic: d.ctx.registry.get_sample_value(
                "postline_records_consumed_total", {"stage": "deliverer", "topic": topic}
            )
            for topic in (OUTBOUND.name, OUTBOUND_BULK.name)
        }
    assert (deferred.bulk, delivered.bulk, delivered.attempt) == (True, True, 2)
    # The first attempt and the retry both came from postline.outbound.bulk.
    assert consumed == {OUTBOUND.name: None, OUTBOUND_BULK.name: 2.0}


async def test_retry_tier_honours_not_before(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns:
        section = deliverer_section(
            dns, port, retry={"tiers": ["1s", "3s"], "first_delay": "2s", "factor": 1.0}
        )
        async with (
            SmtpSink(LOOPBACKS[0], port) as sink,
            running_deliverer(tmp_path, section) as d,
        ):
            sink.script_rcpt("a@dest.test", "451 4.3.0 Temporary local problem")
            started = time.time()
            await d.send(delivery("a@dest.test"))
            (deferred,) = await d.wait_events(EventKind.DEFERRED, 1)
            (delivered,) = await d.wait_events(EventKind.DELIVERED, 1)
            # The schedule said 2 s (no jitter): the retry never comes back earlier.
            assert delivered.at - deferred.at >= 2.0
            assert delivered.at - started >= 2.0
            assert sink.recipients() == ["a@dest.test"]


async def test_expiry_after_max_age(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        for _ in range(20):
            sink.script_rcpt("a@dest.test", "451 4.3.0 Still not ready")
        await d.send(delivery("a@dest.test", expires_at=time.time() + 1.5))
        (expired,) = await d.wait_events(EventKind.EXPIRED, 1)
        assert expired.recipient == "a@dest.test"
        assert expired.reply.enhanced == "5.4.7"  # type: ignore[union-attr]
        assert "451" in expired.detail
        await d.settle()
        assert not sink.messages
        assert d.of(EventKind.DEFERRED)


async def test_expired_before_any_attempt_counts_max_age(tmp_path: Path) -> None:
    async with (
        DnsServer({"flaky.test": [("SERVFAIL", "")]}) as dns,
        running_deliverer(
            tmp_path, deliverer_section(dns, free_port(), retry={"max_age": "1s"})
        ) as d,
    ):
        await d.send(delivery("a@flaky.test", submitted_at=time.time() - 5))
        (expired,) = await d.wait_events(EventKind.EXPIRED, 1)
        assert expired.attempt == 1


async def test_undecodable_record_is_dead_lettered_and_does_not_stall(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port), partitions=1) as d,
    ):
        await d.bus.publish([OutRecord(OUTBOUND.name, b"dest.test", b"\xc1not msgpack")])
        await d.send(delivery("a@dest.test"))
        await d.wait_events(EventKind.DELIVERED, 1)
        await d.settle()
        (dead,) = await read_topic(d.bus, DEAD, 1)
        assert dead.topic == OUTBOUND.name and dead.group == "postline-deliverer"
        assert sink.recipients() == ["a@dest.test"]
