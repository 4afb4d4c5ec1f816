"""Nothing pins a partition: awkward recipients, and a bus that fails under both loops.

Regression tests for two defects: a recipient aiosmtplib could not put on a command line (a
NUL, a quoted local part with a space, UTF-8) killed the domain's worker, the delivery never
got an outcome and the partition's committed offset never moved again (every restart sent
everything after it once more); and a bus failure ended the retry loop's task, unseen, while
``/readyz`` stayed green.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from shared.bus.base import Bus, TopicPartition
from shared.runtime.stage import StageContext
from shared.wire.records import EventKind
from shared.wire.topics import OUTBOUND
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.faultybus import FaultyBus
from testing.smtpsink import SmtpSink, free_port
from tests.services.deliverer.harness import (
    Running,
    deliverer_section,
    delivery,
    running_deliverer,
)


async def committed(d: Running, group: str = "postline-deliverer") -> int:
    """The group's committed offsets, summed over the outbound partitions."""
    consumer = d.bus.consumer(group, [OUTBOUND.name])
    total = 0
    for partition in range(2):
        total += await consumer.committed(TopicPartition(OUTBOUND.name, partition))
    return total


async def test_awkward_recipients_each_get_an_outcome_and_offsets_move(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port, smtputf8=True) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        await d.send(
            delivery("nul\x00x@dest.test"),
            delivery('"john smith"@dest.test'),
            delivery("jöran@dest.test", smtputf8=True),
            delivery("after@dest.test"),
        )
        await d.wait_events(EventKind.DELIVERED, 3)
        (bounced,) = await d.wait_events(EventKind.BOUNCED, 1)
        await d.settle()
        assert bounced.recipient == "nul\x00x@dest.test"
        assert bounced.reply is not None and bounced.reply.enhanced == "5.1.3"
        assert bounced.reason == "userunknown"  # "bad destination mailbox address syntax"
        failures = d.ctx.registry.get_sample_value(
            "postline_deliverer_failures_total",
            {"provider": bounced.provider, "result": "bounced", "reason": "userunknown"},
        )
        assert failures == 1.0
        # Exactly as RFC 5321 wants them on the wire: the quotes kept, UTF-8 with SMTPUTF8.
        assert sorted(sink.recipients()) == sorted(
            ['"john smith"@dest.test', "jöran@dest.test", "after@dest.test"]
        )
        assert await committed(d) == 4  # every offset committed: a restart sends nothing again


async def test_utf8_local_part_to_a_server_without_smtputf8_bounces_5_6_7(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        await d.send(delivery("jöran@dest.test", smtputf8=True), delivery("ok@dest.test"))
        (bounced,) = await d.wait_events(EventKind.BOUNCED, 1)
        await d.wait_events(EventKind.DELIVERED, 1)
        assert bounced.reply is not None and bounced.reply.enhanced == "5.6.7"
        assert bounced.reason == "contenterror"  # RFC 3463 X.6.7: the address needs SMTPUTF8
        assert sink.recipients() == ["ok@dest.test"]


async def wait_until(predicate: object, timeout: float = 10.0) -> None:
    """Poll ``predicate()`` until true, with a deadline."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def bus_errors(ctx: StageContext) -> float:
    value = ctx.registry.get_sample_value("postline_bus_errors_total", {"stage": "deliverer"})
    return value or 0.0


async def test_bus_failure_under_both_loops_fails_readiness_then_work_resumes(
    tmp_path: Path,
) -> None:
    port = free_port(LOOPBACKS[:1])
    faulty: list[FaultyBus] = []

    def wrap(bus: Bus) -> Bus:
        faulty.append(FaultyBus(bus))
        return faulty[0]

    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port), wrap=wrap) as d,
    ):
        switch = faulty[0].switch
        # A message deferred once is in a retry tier when the bus fails.
        sink.script_rcpt("later@dest.test", "451 4.3.0 try later")
        await d.send(delivery("later@dest.test"))
        await d.wait_events(EventKind.DEFERRED, 1)
        assert d.ctx.ready

        switch.failing = True
        await d.send(delivery("during@dest.test"))  # published while the stage's bus fails
        await wait_until(lambda: not d.ctx.ready)
        await wait_until(
            lambda: (
                {"bus:postline-deliverer", "bus:postline-deliverer-retry"}
                <= set(d.ctx.unready_reasons)
            )
        )
        refused = switch.refused
        await wait_until(lambda: switch.refused > refused + 2)  # both loops keep trying
        assert bus_errors(d.ctx) > 0
        assert d.task is not None and not d.task.done()  # nothing died

        switch.failing = False
        await wait_until(lambda: d.ctx.ready)
        await d.wait_events(EventKind.DELIVERED, 2, timeout=20)
        await d.settle()
        assert sorted(sink.recipients()) == ["during@dest.test", "later@dest.test"]
        assert d.ctx.registry.get_sample_value(
            "postline_task_failures_total", {"stage": "deliverer", "task": "retry"}
        ) in (None, 0.0)
