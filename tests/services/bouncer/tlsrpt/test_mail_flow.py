"""A mailto report through Postline itself: the bouncer's Submission is signed by the signer
(DKIM, RFC 8460 5.3) and delivered by the deliverer to an aiosmtpd sink, where both
signatures verify (dkimpy, keys from the test DNS server) and the message is the RFC 8460
report: its headers and the gzip JSON attachment."""

from __future__ import annotations

import email
import email.policy
import gzip
import json
from email.message import EmailMessage
from pathlib import Path

import pytest

from services.bouncer.tlsrpt.counts import DAY, day_start
from services.signer.keys import KeyStore
from shared.wire.records import EventKind
from shared.wire.topics import EVENTS, SUBMITTED, TLSRPT
from testing.buses import bus_of_kind
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.smtpsink import SmtpSink, free_port
from tests.services.bouncer.tlsrpt.conftest import (
    DELAY,
    Capture,
    Clock,
    publish,
    session,
    start,
    tlsrpt_config,
    totals,
    until,
)
from tests.services.deliverer.harness import deliverer_section, running_deliverer
from tests.services.signer.conftest import add_key, dns_records, verify
from tests.services.signer.test_stage import running

START = day_start("2026-05-02")
REPORTS_TO = "tls-reports@dest.test"


async def test_a_mailed_report_is_dkim_signed_and_delivered(
    tmp_path: Path, request: pytest.FixtureRequest, capture: Capture
) -> None:
    keys = tmp_path / "dkim"
    keys.mkdir()
    add_key(keys, "example.test", "r1", "rsa")
    store = KeyStore(keys)
    store.load()
    port = free_port(LOOPBACKS[:1])
    records = {
        **dns_records(store),
        **mx_records("dest.test", (10, LOOPBACKS[0])),
        "_smtp._tls.mailed.test": [("TXT", f'"v=TLSRPTv1; rua=mailto:{REPORTS_TO}"')],
    }
    async with DnsServer(records) as dns:
        bus = bus_of_kind("embedded", request, tmp_path, "tlsrpt")
        await bus.start()
        await bus.ensure_topics([EVENTS.name, TLSRPT.name, SUBMITTED.name])
        config = tlsrpt_config(
            tmp_path, capture.pki.ca, dns.port, from_address="tlsrpt@example.test"
        )
        clock = Clock(START + 60)
        bouncer = await start(bus, config, clock)
        await publish(bus, [session("mailed.test", START + 10, "validation-failure")])

        async def counted() -> bool:
            return await totals(bus, "mailed.test") == (0, 1)

        await until(counted, "counted")
        clock.now = START + DAY + DELAY

        async def submitted() -> bool:
            return bool(await bus.read_table(SUBMITTED.name))

        await until(submitted, "the report submitted")
        await bouncer.stop()
        [report_submission] = [
            SUBMITTED.decode(v) for v in (await bus.read_table(SUBMITTED.name)).values()
        ]
        await bus.close()

        signer_dir, deliverer_dir = tmp_path / "signer", tmp_path / "deliverer"
        signer_dir.mkdir()
        deliverer_dir.mkdir()
        async with running(signer_dir, keys) as signer:
            await signer.submit(report_submission)
            await signer.events(1)
            made = await signer.deliveries()
        async with (
            SmtpSink(LOOPBACKS[0], port) as sink,
            running_deliverer(deliverer_dir, deliverer_section(dns, port)) as d,
        ):
            await d.send(*made)
            await d.wait_events(EventKind.DELIVERED, 1)
            [received] = sink.messages
            assert await verify(received.data, dns.port, 0)
    assert received.rcpt_tos == (REPORTS_TO,)
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["TLS-Report-Domain"] == "mailed.test"
    assert message["TLS-Report-Submitter"] == "relay.postline.test"
    assert message["Subject"].startswith("Report Domain: mailed.test Submitter: ")
    assert "d=example.test" in message["DKIM-Signature"]
    [attachment] = list(message.iter_attachments())
    report = json.loads(gzip.decompress(attachment.get_content()))
    assert report["policies"][0]["summary"] == {
        "total-successful-session-count": 0,
        "total-failure-session-count": 1,
    }
