"""Adaptive throttling end to end: 421 cuts and suspends a domain, which later recovers,
while other domains in the same partition keep flowing."""

from __future__ import annotations

from pathlib import Path

from shared.wire.records import EventKind
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.smtpsink import SmtpSink, free_port
from tests.services.deliverer.harness import deliverer_section, delivery, running_deliverer

THROTTLING = {"backoff": "1s", "max_backoff": "2s", "ramp_after": 1}


async def test_421_throttles_then_recovers(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("busy.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(
            tmp_path,
            deliverer_section(dns, port, throttling=THROTTLING, defaults={"max_connections": 2}),
        ) as d,
    ):
        sink.script_mail("421 4.7.0 Try again later, closing connection")
        await d.send(*(delivery(f"r{i}@busy.test") for i in range(4)))
        throttled = await d.wait_events(EventKind.THROTTLED, 1)
        assert throttled[0].classification == "throttle"
        assert throttled[0].domain == "busy.test"
        assert throttled[0].reply.code == 421  # type: ignore[union-attr]
        assert "concurrency=1" in throttled[0].detail
        await d.wait_events(EventKind.DELIVERED, 4)
        changes = await d.wait_events(EventKind.THROTTLED, 2)
        assert changes[-1].classification in ("ramp", "recover")
        assert sorted(sink.recipients()) == sorted(f"r{i}@busy.test" for i in range(4))
        metrics = d.ctx.registry
        assert (
            metrics.get_sample_value(
                "postline_deliverer_throttle_changes_total",
                {"provider": "other", "action": "throttle"},
            )
            == 1.0
        )


async def test_rate_limit_text_on_4_7_x_throttles(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("busy.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port, throttling=THROTTLING)) as d,
    ):
        sink.script_rcpt("a@busy.test", "450 4.7.28 Unusual rate of unsolicited mail, try later")
        await d.send(delivery("a@busy.test"))
        (event,) = await d.wait_events(EventKind.THROTTLED, 1)
        assert event.reply.enhanced == "4.7.28"  # type: ignore[union-attr]
        await d.wait_events(EventKind.DELIVERED, 1)


async def test_throttled_domain_does_not_stall_another_in_the_same_partition(
    tmp_path: Path,
) -> None:
    port = free_port(LOOPBACKS[:2])
    records = {
        **mx_records("busy.test", (10, LOOPBACKS[0])),
        **mx_records("calm.test", (10, LOOPBACKS[1])),
    }
    slow = {**THROTTLING, "backoff": "30s", "max_backoff": "60s"}
    async with (
        DnsServer(records) as dns,
        SmtpSink(LOOPBACKS[0], port) as busy,
        SmtpSink(LOOPBACKS[1], port) as calm,
        running_deliverer(
            tmp_path, deliverer_section(dns, port, throttling=slow), partitions=1
        ) as d,
    ):
        for _ in range(50):
            busy.script_mail("421 4.7.0 Too many connections, slow down")
        await d.send(*(delivery(f"b{i}@busy.test") for i in range(20)))
        await d.wait_events(EventKind.THROTTLED, 1)
        await d.send(*(delivery(f"c{i}@calm.test") for i in range(5)))
        await d.wait_events(EventKind.DELIVERED, 5)
        assert sorted(calm.recipients()) == sorted(f"c{i}@calm.test" for i in range(5))
        assert not busy.messages
        await d.settle()  # busy.test's excess went to a retry tier: nothing holds the partition
        assert d.stage_pending() == 0
