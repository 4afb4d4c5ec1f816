"""End to end on the embedded bus: outbound -> the deliverer -> sinks found through real DNS."""

from __future__ import annotations

from pathlib import Path

from shared.wire.records import EventKind
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.smtpsink import SmtpSink, free_port
from tests.services.deliverer.harness import (
    deliverer_section,
    delivery,
    running_deliverer,
)


async def test_delivery_with_connection_reuse(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(
            tmp_path, deliverer_section(dns, port, defaults={"max_connections": 2})
        ) as d,
    ):
        await d.send(*(delivery(f"r{i}@dest.test") for i in range(10)))
        delivered = await d.wait_events(EventKind.DELIVERED, 10)
        await sink.wait_for(10)
        assert sink.connections <= 2  # at most max_connections, each reused
        assert {e.mx for e in delivered} == {"mx0.dest.test"}
        assert {e.provider for e in delivered} == {"other"}
        assert {e.attempt for e in delivered} == {1}
        assert {e.reply.code for e in delivered if e.reply} == {250}
        assert sorted(sink.recipients()) == sorted(f"r{i}@dest.test" for i in range(10))


async def test_mx_fallback_when_first_refuses_connections(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:2])
    records = mx_records("dest.test", (10, LOOPBACKS[0]), (20, LOOPBACKS[1]))
    async with (
        DnsServer(records) as dns,
        SmtpSink(LOOPBACKS[1], port) as backup,  # nothing listens on the preferred MX
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        await d.send(delivery("a@dest.test"))
        (event,) = await d.wait_events(EventKind.DELIVERED, 1)
        assert event.mx == "mx1.dest.test"
        assert backup.recipients() == ["a@dest.test"]


async def test_implicit_mx(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer({"plain.test": [("A", LOOPBACKS[0])]}) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        await d.send(delivery("a@plain.test"))
        (event,) = await d.wait_events(EventKind.DELIVERED, 1)
        assert event.mx == "plain.test"
        assert sink.recipients() == ["a@plain.test"]


async def test_null_mx_and_nxdomain_bounce_without_retry(tmp_path: Path) -> None:
    records = {"nullmx.test": [("MX", "0 .")]}
    async with (
        DnsServer(records) as dns,
        running_deliverer(tmp_path, deliverer_section(dns, free_port())) as d,
    ):
        await d.send(delivery("a@nullmx.test"), delivery("b@nowhere.test"))
        bounced = await d.wait_events(EventKind.BOUNCED, 2)
        by_rcpt = {e.recipient: e for e in bounced}
        assert by_rcpt["a@nullmx.test"].reply.enhanced == "5.1.10"  # type: ignore[union-attr]
        assert by_rcpt["b@nowhere.test"].reply.enhanced == "5.1.2"  # type: ignore[union-attr]
        await d.settle()
        assert not d.of(EventKind.DEFERRED)


async def test_servfail_then_success(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer({"flaky.test": [("SERVFAIL", "")]}) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        await d.send(delivery("a@flaky.test"))
        (deferred,) = await d.wait_events(EventKind.DEFERRED, 1)
        assert deferred.reply.enhanced == "4.4.3"  # type: ignore[union-attr]
        dns.set("flaky.test", [("MX", "10 mx.flaky.test.")])
        dns.set("mx.flaky.test", [("A", LOOPBACKS[0])])
        (delivered,) = await d.wait_events(EventKind.DELIVERED, 1)
        assert delivered.attempt == 2
        assert sink.recipients() == ["a@flaky.test"]


async def test_partial_recipient_acceptance(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        sink.script_rcpt("gone@dest.test", "550 5.1.1 No such user")
        sink.script_rcpt("later@dest.test", "450 4.2.1 Try this one later")
        await d.send(delivery("ok@dest.test", "gone@dest.test", "later@dest.test"))
        (bounced,) = await d.wait_events(EventKind.BOUNCED, 1)
        assert bounced.recipient == "gone@dest.test"
        assert bounced.reply.code == 550  # type: ignore[union-attr]
        (deferred,) = await d.wait_events(EventKind.DEFERRED, 1)
        assert deferred.recipient == "later@dest.test"
        delivered = await d.wait_events(EventKind.DELIVERED, 2)  # ok now, later on retry
        assert [e.recipient for e in delivered] == ["ok@dest.test", "later@dest.test"]
        assert [e.attempt for e in delivered] == [1, 2]
        assert sink.recipients() == ["ok@dest.test", "later@dest.test"]


async def test_452_too_many_recipients_splits(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    rcpts = [f"r{i}@dest.test" for i in range(5)]
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port, max_recipients=2) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        await d.send(delivery(*rcpts))
        await d.wait_events(EventKind.DELIVERED, 5)
        assert [len(m.rcpt_tos) for m in sink.messages] == [2, 2, 1]
        assert not d.of(EventKind.DEFERRED)


async def test_tls_required_but_not_offered_defers_never_plaintext(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("bank.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(
            tmp_path, deliverer_section(dns, port, domains={"bank.test": {"tls": "required"}})
        ) as d,
    ):
        await d.send(delivery("a@bank.test"))
        deferred = await d.wait_events(EventKind.DEFERRED, 2)  # first attempt and a retry
        assert {e.reply.enhanced for e in deferred} == {"4.7.5"}  # type: ignore[union-attr]
        assert not sink.messages and not sink.dropped
        assert not d.of(EventKind.DELIVERED)
        # Operators are alerted on this counter (PostlineTlsRequiredFailures).
        failures = d.ctx.registry.get_sample_value(
            "postline_deliverer_tls_required_failures_total", {"provider": "other"}
        )
        assert failures is not None and failures >= 2
