"""Refused commands cost a bounded amount: the error limit per session and the event queue."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from prometheus_client import CollectorRegistry

from services.ingest.handoff import EventSink
from services.ingest.metrics import IngestMetrics
from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig
from shared.wire.records import Event, EventKind
from shared.wire.topics import EVENTS, SUBMITTED
from tests.services.ingest.client import Raw
from tests.services.ingest.conftest import StartIngest

MESSAGE = b"From: app@example.com\r\nTo: x@dest.test\r\nSubject: hi\r\n\r\nHello.\r\n"
DROPPED = "postline_ingest_rejection_events_dropped_total"


async def test_pipelined_refusals_end_the_session_and_spare_others(
    start_ingest: StartIngest,
) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.2/32"])
    port = ingest.port("relay")
    attacker = await Raw.open(port)
    assert (await attacker.reply())[0] == 220
    assert (await attacker.cmd("EHLO attacker.test"))[0] == 250
    assert (await attacker.cmd("MAIL FROM:<x@attacker.test>"))[0] == 250
    # 2,000 RCPTs in one write (RFC 2920 pipelining), each refused: relay denied.
    await attacker.send(b"".join(b"RCPT TO:<v%d@victim.test>\r\n" % i for i in range(2000)))
    app = await Raw.open(port, source="127.0.0.2")
    assert (await app.reply())[0] == 220
    assert (await app.cmd("EHLO app.test"))[0] == 250
    assert (await app.cmd("MAIL FROM:<app@example.com>"))[0] == 250
    assert (await app.cmd("RCPT TO:<bob@dest.test>"))[0] == 250
    assert (await app.cmd("DATA"))[0] == 354
    code, text = await app.cmd(MESSAGE + b".")
    assert code == 250 and "queued as" in text
    replies = []
    while True:
        try:
            replies.append(await attacker.reply())
        except ConnectionError:
            break
    # The MAIL above was accepted; the limit (20) counts the refused RCPTs.
    assert replies[:19] == [(554, "5.7.1 Relay access denied")] * 19
    assert replies[19:] == [(554, "5.7.1 Relay access denied"), (421, "4.7.0 Too many errors")]
    await attacker.close()
    await app.close()
    assert len(await ingest.records(SUBMITTED, 1)) == 1
    events = await ingest.events(22)
    checks = [e.check for e in events]
    assert checks.count("relay") == 20 and checks.count("error_limit") == 1


async def test_suppressed_recipients_do_not_count_as_errors(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(
        trusted_networks=["127.0.0.0/8"], limits={"max_errors": 3, "max_recipients": 100}
    )
    raw = await Raw.open(ingest.port("relay"))
    await raw.reply()
    await raw.cmd("EHLO app.test")
    await raw.cmd("MAIL FROM:<app@example.com>")
    for i in range(101):
        code, _ = await raw.cmd(f"RCPT TO:<r{i}@dest.test>")
    assert code == 452  # recipient limit: "send the rest later", not an error
    assert (await raw.cmd("NOOP"))[0] == 250
    assert (await raw.cmd("RCPT TO:<bad address@dest.test>"))[0] == 501
    assert (await raw.cmd("RCPT TO:<bad address@dest.test>"))[0] == 501
    assert await raw.cmd("RCPT TO:<bad address@dest.test>") == (501, "5.1.3 Bad address syntax")
    assert await raw.reply() == (421, "4.7.0 Too many errors")
    assert await raw.closed()
    await raw.close()


def rejected(n: int) -> Event:
    return Event(kind=EventKind.REJECTED, message_id=f"m{n}", at=0.0, check="relay")


async def test_event_queue_drops_and_counts_beyond_its_bound(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=1))
    await bus.start()
    try:
        sink = EventSink(bus, 5.0, logging.getLogger("test"), IngestMetrics(registry), size=3)
        for n in range(10):
            sink.emit(rejected(n))
        assert registry.get_sample_value(DROPPED) == 7.0
        publisher = asyncio.create_task(sink.run())
        await asyncio.wait_for(sink.flush(), 10)
        publisher.cancel()
        consumer = bus.consumer("t", [EVENTS.name])
        await consumer.start()
        batch = await consumer.fetch(timeout=1.0)
        assert [EVENTS.decode(m.value).message_id for m in batch if m.value] == ["m0", "m1", "m2"]
        await consumer.stop()
    finally:
        await bus.close()
