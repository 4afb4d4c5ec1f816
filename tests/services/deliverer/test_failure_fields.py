"""Final-failure events carry what the bouncer's DSN to the sender needs.

Found by the end-to-end harness: the bouncer builds the sender's DSN (RFC 3464, with the
original headers as text/rfc822-headers, RFC 3462) from the ``bounced``/``expired`` event
alone, but the deliverer left ``Event.headers`` and ``Event.bulk`` empty.
"""

from __future__ import annotations

import time
from pathlib import Path

from services.deliverer.retry import MAX_DSN_HEADERS, header_block
from shared.wire.records import EventKind
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.smtpsink import SmtpSink, free_port
from tests.services.deliverer.harness import BODY, deliverer_section, delivery, running_deliverer

HEADERS = BODY.partition(b"\r\n\r\n")[0] + b"\r\n"


def test_header_block_stops_at_the_first_empty_line() -> None:
    assert header_block(BODY) == HEADERS
    assert header_block(b"Subject: no body\r\n") == b"Subject: no body\r\n"


def test_header_block_is_capped_at_a_line_end() -> None:
    line = b"X-Filler: " + b"x" * 90 + b"\r\n"
    data = line * (2 * MAX_DSN_HEADERS // len(line)) + b"\r\nbody\r\n"
    block = header_block(data)
    assert len(block) <= MAX_DSN_HEADERS
    assert block.endswith(b"\r\n") and len(block) % len(line) == 0


async def test_only_the_bounced_event_carries_headers_and_both_say_bulk(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        sink.script_rcpt("gone@dest.test", "550 5.1.1 No such user")
        await d.send(delivery("ok@dest.test", "gone@dest.test", bulk=True))
        (bounced,) = await d.wait_events(EventKind.BOUNCED, 1)
        (delivered,) = await d.wait_events(EventKind.DELIVERED, 1)
    assert bounced.headers == HEADERS and bounced.bulk is True
    # The header block is for the sender's DSN only; bulk is what the message is, on every
    # event (reports split deliverability by transactional and bulk mail).
    assert delivered.headers == b"" and delivered.bulk is True


async def test_expired_event_carries_headers_and_bulk(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        for _ in range(20):
            sink.script_rcpt("a@dest.test", "451 4.3.0 Still not ready")
        await d.send(delivery("a@dest.test", expires_at=time.time() + 1.0))
        (expired,) = await d.wait_events(EventKind.EXPIRED, 1)
    assert expired.headers == HEADERS and expired.bulk is False
