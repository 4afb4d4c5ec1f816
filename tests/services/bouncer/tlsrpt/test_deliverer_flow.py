"""From the deliverer's real connections to the report: the deliverer (embedded bus, real
DNS, SMTP sinks with test-CA certificates) tries an MX host whose certificate names another
host, then one that passes; the bouncer on the same bus counts its tls_session events and,
once their day is over by the test's clock, POSTs the report to the HTTPS capture server.

The bouncer is a stage apart: this test runs both in one process, as ``postline run`` does.
"""

from __future__ import annotations

import time
from pathlib import Path

from services.bouncer.tlsrpt.counts import DAY, day_of, day_start
from shared.wire.records import EventKind
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.pki import make_pki
from testing.smtpsink import SmtpSink, free_port
from tests.services.bouncer.tlsrpt.conftest import (
    DELAY,
    Capture,
    Clock,
    start,
    tlsrpt_config,
    totals,
    until,
)
from tests.services.deliverer.harness import deliverer_section, delivery, running_deliverer

VERIFIED = {"dest.test": {"tls": "required", "verify_certs": True}}


async def test_the_deliverers_sessions_are_reported(tmp_path: Path, capture: Capture) -> None:
    good = make_pki(tmp_path / "good", cn="mx1.dest.test")
    wrong = make_pki(tmp_path / "wrong", cn="somewhere.else.test")
    port = free_port(LOOPBACKS[:2])
    records = mx_records("dest.test", (10, LOOPBACKS[0]), (20, LOOPBACKS[1]))
    records["_smtp._tls.dest.test"] = [("TXT", f'"v=TLSRPTv1; rua={capture.url("rpt")}"')]
    ca_file = tmp_path / "trusted.pem"
    ca_file.write_bytes(good.ca.read_bytes() + wrong.ca.read_bytes())
    async with (
        DnsServer(records) as dns,
        SmtpSink(LOOPBACKS[0], port, tls_context=wrong.server_context()),
        SmtpSink(LOOPBACKS[1], port, tls_context=good.server_context()) as second,
    ):
        section = deliverer_section(dns, port, ca_file=str(ca_file), domains=VERIFIED)
        async with running_deliverer(tmp_path / "deliverer", section) as d:
            clock = Clock(time.time())  # counting while the day runs; moved on below
            config = tlsrpt_config(tmp_path, capture.pki.ca, dns.port)
            bouncer = await start(d.bus, config, clock)
            await d.send(delivery("a@dest.test"))
            await d.wait_events(EventKind.DELIVERED, 1)
            sessions = await d.wait_events(EventKind.TLS_SESSION, 2)

            async def counted() -> bool:
                return await totals(d.bus, "dest.test") == (1, 1)

            await until(counted, "both sessions counted")
            # Past the end of the sessions' day (whatever day the machine is on).
            clock.now = day_start(day_of(max(e.at for e in sessions))) + DAY + DELAY

            # One report per day the sessions fell on (two only if they straddle midnight).
            days = {day_of(e.at) for e in sessions}

            async def sent() -> bool:
                return len(capture.accepted) >= len(days)

            await until(sent, "the report POSTed")
            await bouncer.stop()
    assert second.recipients() == ["a@dest.test"]
    reports = capture.reports()
    assert len(reports) == len(days)
    policies = [p for report in reports for p in report["policies"]]
    for policy in policies:
        assert policy["policy"] == {
            "policy-type": "no-policy-found",
            "policy-domain": "dest.test",
        }
    summaries = [p["summary"] for p in policies]
    assert sum(s["total-successful-session-count"] for s in summaries) == 1
    assert sum(s["total-failure-session-count"] for s in summaries) == 1
    [row] = [row for p in policies for row in p.get("failure-details", [])]
    assert row["result-type"] == "certificate-host-mismatch"
    assert row["receiving-mx-hostname"] == "mx0.dest.test"
    assert row["receiving-ip"] == LOOPBACKS[0]
    assert row["failed-session-count"] == 1
