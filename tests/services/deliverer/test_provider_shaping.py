"""Domains hosted by one provider with a policy share its limits and its throttle."""

from __future__ import annotations

from pathlib import Path

from shared.wire.records import EventKind
from testing.dnsserver import LOOPBACKS, DnsServer
from testing.smtpsink import SmtpSink, free_port
from tests.services.deliverer.harness import deliverer_section, delivery, running_deliverer

# Our test DNS serves Google-looking MX names on loopback: the provider map sees "google".
RECORDS = {
    "a.test": [("MX", "10 aspmx.l.google.com.")],
    "b.test": [("MX", "10 aspmx.l.google.com.")],
    "aspmx.l.google.com": [("A", LOOPBACKS[0])],
}


async def test_provider_connection_limit_spans_its_domains(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    section_overrides = {"providers": {"google": {"max_connections": 1}}}
    async with (
        DnsServer(RECORDS) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port, **section_overrides)) as d,
    ):
        await d.send(delivery("warm@a.test"), delivery("warm@b.test"))  # learn the provider
        await d.wait_events(EventKind.DELIVERED, 2)
        await d.settle()
        sink.max_active = sink.active
        await d.send(*(delivery(f"r{i}@{dom}") for i in range(5) for dom in ("a.test", "b.test")))
        delivered = await d.wait_events(EventKind.DELIVERED, 12)
        assert sink.max_active == 1  # one connection to "google" at a time, across domains
        assert {e.provider for e in delivered} == {"google"}
        assert len(sink.messages) == 12


async def test_a_provider_throttle_applies_to_all_its_domains(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    overrides = {
        "providers": {"google": {"max_connections": 2}},
        "throttling": {"backoff": "1s", "max_backoff": "2s", "ramp_after": 1},
    }
    async with (
        DnsServer(RECORDS) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port, **overrides)) as d,
    ):
        await d.send(delivery("warm@b.test"))
        await d.wait_events(EventKind.DELIVERED, 1)
        sink.script_mail("421 4.7.28 Unusual rate of mail, try again later")
        await d.send(delivery("x@a.test"))
        (throttle,) = await d.wait_events(EventKind.THROTTLED, 1)
        assert throttle.provider == "google"
        await d.send(delivery("y@b.test"))  # same provider: held back, not attempted
        delivered = await d.wait_events(EventKind.DELIVERED, 3)
        late = {e.recipient: e for e in delivered}
        assert late["y@b.test"].at >= throttle.at + 1.0  # waited out the suspension
        assert late["y@b.test"].attempt == 1  # shaping is not an attempt
        shaped = d.ctx.registry.get_sample_value(
            "postline_deliverer_shaped_total", {"reason": "throttled"}
        )
        assert shaped is not None and shaped >= 1
