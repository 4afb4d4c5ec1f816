"""TLS-RPT end to end in the bouncer, on Kafka and the embedded bus: the deliverer's
tls_session events counted across a restart (neither lost nor doubled), one report per
domain and day once the day is over (by the injected clock), POSTed to an HTTPS capture
server and mailed through the pipeline (a Submission with RFC 8460 5.3's headers and
attachment), and not sent again by a second run."""

from __future__ import annotations

import email
import email.policy
import gzip
import json
from email.message import EmailMessage
from pathlib import Path

from services.bouncer.tlsrpt.counts import DAY, day_start
from services.bouncer.tlsrpt.report import filename, report_id
from shared.bus.base import Bus
from shared.wire.records import Submission
from shared.wire.topics import SUBMITTED
from testing.dnsserver import DnsServer
from tests.services.bouncer.tlsrpt.conftest import (
    DELAY,
    Capture,
    Clock,
    publish,
    session,
    start,
    table,
    tlsrpt_config,
    totals,
    until,
)

DAY_D = "2026-03-14"  # any day: the clock is the test's
START = day_start(DAY_D)
SUBMITTER = "relay.postline.test"
HTTPS_DOMAIN = "dest.test"
MAIL_DOMAIN = "mailed.test"
RUA_MAILBOX = "tls-reports@mailed.test"


def failures() -> list[tuple[str, str]]:
    """(result type, mx) of the failed sessions: several types, one repeated."""
    return [
        ("certificate-expired", "mx1.dest.test"),
        ("certificate-expired", "mx1.dest.test"),
        ("starttls-not-supported", "mx2.dest.test"),
        ("validation-failure", "mx1.dest.test"),
    ]


async def submissions(bus: Bus) -> list[Submission]:
    # Keyed by message id, so the "table" of the topic is every record on it.
    found = [SUBMITTED.decode(v) for v in (await bus.read_table(SUBMITTED.name)).values()]
    return [s for s in found if s.tags.get("tlsrpt") == "1"]


def check_https_report(capture: Capture, successes: int, fails: int) -> None:
    """The one report POSTed for the https domain: RFC 8460 fields and the counts."""
    [(path, headers, body)] = capture.requests
    assert path == "report"
    assert headers["Content-Type"] == "application/tlsrpt+gzip"
    report = json.loads(gzip.decompress(body))
    assert report["organization-name"] == "Postline Test"
    assert report["contact-info"] == "tlsrpt@relay.postline.test"
    assert report["report-id"] == report_id(SUBMITTER, HTTPS_DOMAIN, DAY_D)
    assert report["date-range"] == {
        "start-datetime": "2026-03-14T00:00:00Z",
        "end-datetime": "2026-03-14T23:59:59Z",
    }
    [policy] = report["policies"]
    assert policy["policy"] == {
        "policy-type": "sts",
        "policy-string": [
            "version: STSv1",
            "mode: enforce",
            f"mx: *.{HTTPS_DOMAIN}",
            "max_age: 86400",
        ],
        "policy-domain": HTTPS_DOMAIN,
        "mx-host": [f"*.{HTTPS_DOMAIN}"],
    }
    assert policy["summary"] == {
        "total-successful-session-count": successes,
        "total-failure-session-count": fails,
    }
    rows = {
        (d["result-type"], d["receiving-mx-hostname"]): d["failed-session-count"]
        for d in policy["failure-details"]
    }
    assert rows == {
        ("certificate-expired", "mx1.dest.test"): 2,
        ("starttls-not-supported", "mx2.dest.test"): 1,
        ("validation-failure", "mx1.dest.test"): 1,
    }
    for row in policy["failure-details"]:
        assert row["sending-mta-ip"] == "198.51.100.7"
        assert row["receiving-ip"] == "192.0.2.10"
        assert row["failure-reason-code"].startswith(row["result-type"])


async def check_mailed_report(bus: Bus) -> None:
    """The one report mailed for the mailto domain: RFC 8460 5.3 headers, attachment."""
    # The mailto rua: one Submission through the pipeline (the signer DKIM-signs it).
    [mailed] = await submissions(bus)
    assert mailed.mail_from == "tlsrpt@relay.postline.test"
    assert mailed.rcpt_to == (RUA_MAILBOX,)
    message = email.message_from_bytes(mailed.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    rid = report_id(SUBMITTER, MAIL_DOMAIN, DAY_D)
    assert message["Subject"] == (
        f"Report Domain: {MAIL_DOMAIN} Submitter: {SUBMITTER} Report-ID: <{rid}>"
    )
    assert message["TLS-Report-Domain"] == MAIL_DOMAIN
    assert message["TLS-Report-Submitter"] == SUBMITTER
    assert message["From"] == "tlsrpt@relay.postline.test"
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "tlsrpt"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/tlsrpt+gzip"
    assert attachment.get_filename() == filename(SUBMITTER, MAIL_DOMAIN, DAY_D, rid)
    mailed_report = json.loads(gzip.decompress(attachment.get_content()))
    assert mailed_report["policies"][0]["summary"] == {
        "total-successful-session-count": 2,
        "total-failure-session-count": 0,
    }


async def test_a_tls_rpt_report_with_the_right_counts_is_sent_to_a_capture_server(
    bus: Bus, tmp_path: Path, capture: Capture
) -> None:
    records = {
        f"_smtp._tls.{HTTPS_DOMAIN}": [
            ("TXT", f'"v=TLSRPTv1; rua={capture.url("report")}"'),
        ],
        f"_smtp._tls.{MAIL_DOMAIN}": [("TXT", f'"v=TLSRPTv1; rua=mailto:{RUA_MAILBOX}"')],
    }
    async with DnsServer(records) as dns:
        config = tlsrpt_config(tmp_path, capture.pki.ca, dns.port)
        clock = Clock(START + 3600)
        successes = 7
        fails = failures()
        # The first part of day D, counted by the first run.
        first = [session(HTTPS_DOMAIN, START + 60 + i) for i in range(4)]
        first += [session(HTTPS_DOMAIN, START + 120, t, mx=mx) for t, mx in fails[:2]]
        first += [session(MAIL_DOMAIN, START + 200, mx="mx.mailed.test") for _ in range(2)]
        running = await start(bus, config, clock)
        await publish(bus, first)

        async def first_counted() -> bool:
            return await totals(bus, HTTPS_DOMAIN) == (4, 2)

        await until(first_counted, "the first run's counts")
        await running.stop()

        # A restart in the middle of the day: the rest counted on top, nothing twice.
        clock.now = START + DAY - 60
        running = await start(bus, config, clock)
        rest = [session(HTTPS_DOMAIN, START + 5000 + i) for i in range(successes - 4)]
        rest += [session(HTTPS_DOMAIN, START + 6000, t, mx=mx) for t, mx in fails[2:]]
        rest += [session(HTTPS_DOMAIN, START + DAY + 10)]  # day D+1: another report
        await publish(bus, rest)

        async def all_counted() -> bool:
            return await totals(bus, HTTPS_DOMAIN) == (successes + 1, len(fails))

        await until(all_counted, "every session counted once")
        assert capture.requests == []  # the day is not over

        # Past the end of day D plus the delay: day D's reports go; D+1 is not due.
        clock.now = START + DAY + DELAY + 1

        async def settled() -> bool:
            marks = [r for r in (await table(bus)).values() if r.state != "counts"]
            return len(marks) == 2

        await until(settled, "both domains' day D settled")
        await running.stop()

        check_https_report(capture, successes, len(fails))
        await check_mailed_report(bus)

        # Settled: the counts of day D are gone, day D+1's wait; a second run sends nothing.
        left = await table(bus)
        assert {r.day for r in left.values() if r.state == "counts"} == {"2026-03-15"}
        assert {(r.domain, r.state) for r in left.values() if r.state != "counts"} == {
            (HTTPS_DOMAIN, "sent"),
            (MAIL_DOMAIN, "sent"),
        }
        running = await start(bus, config, clock)
        assert running.stage.tlsrpt is not None

        async def owns_both() -> bool:
            sender = running.stage.tlsrpt
            assert sender is not None
            return await sender.owns(HTTPS_DOMAIN) and await sender.owns(MAIL_DOMAIN)

        await until(owns_both, "the second run owns the events partitions")
        assert await running.stage.tlsrpt.sender.tick() == 0
        await running.stop()
        assert len(capture.requests) == 1
        assert len(await submissions(bus)) == 1
