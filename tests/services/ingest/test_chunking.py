"""CHUNKING / BDAT (RFC 3030) over a real socket."""

from __future__ import annotations

from shared.wire.topics import SUBMITTED
from tests.services.ingest.client import Raw
from tests.services.ingest.conftest import Running, StartIngest

HEAD = b"From: app@example.com\r\nSubject: chunks\r\nMessage-ID: <c@x>\r\nDate: x\r\n\r\n"


async def session(ingest: Running) -> Raw:
    raw = await Raw.open(ingest.port("relay"))
    await raw.reply()
    code, text = await raw.cmd("EHLO client.test")
    assert code == 250 and "CHUNKING" in text.split("\n")
    return raw


async def test_bdat_chunks_arrive_byte_exact(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.1/32"])
    raw = await session(ingest)
    body = b"line one\r\n.starts with a dot\r\n\xe9 8-bit\r\n"
    await raw.send(b"MAIL FROM:<app@example.com>\r\nRCPT TO:<bob@dest.test>\r\n")
    await raw.send(b"BDAT %d\r\n" % len(HEAD) + HEAD)
    await raw.send(b"BDAT %d LAST\r\n" % len(body) + body)
    codes = [await raw.reply() for _ in range(4)]
    assert [c for c, _ in codes] == [250, 250, 250, 250]
    assert codes[2][1] == f"2.0.0 {len(HEAD)} octets received"
    assert "queued as" in codes[3][1]
    [sub] = await ingest.records(SUBMITTED, 1)
    assert sub.data.split(b"\r\n", 4)[4] == HEAD + body  # after the 4 Received lines
    # The session goes on with a classic DATA transaction.
    await raw.cmd("MAIL FROM:<app@example.com>")
    await raw.cmd("RCPT TO:<bob@dest.test>")
    assert (await raw.cmd("DATA"))[0] == 354
    assert (await raw.cmd(HEAD + b"x\r\n."))[0] == 250
    await raw.close()


async def test_bdat_refusals_keep_the_session_in_step(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.1/32"])
    raw = await session(ingest)
    # No transaction: refused, but the 5 octets are consumed, not read as a command.
    await raw.send(b"BDAT 5\r\nNOOP\n")
    assert await raw.reply() == (503, "5.5.1 Need RCPT command")
    assert (await raw.cmd("NOOP"))[0] == 250
    assert (await raw.cmd("BDAT x"))[0] == 501
    await raw.cmd("MAIL FROM:<app@example.com>")
    await raw.cmd("RCPT TO:<bob@dest.test>")
    await raw.send(b"BDAT 4\r\nFrom")
    assert (await raw.reply())[0] == 250
    assert (await raw.cmd("DATA"))[:1] == (503,)
    await raw.close()


async def test_bdat_size_limit(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(
        trusted_networks=["127.0.0.1/32"], limits={"max_message_size": "2KiB"}
    )
    raw = await session(ingest)
    await raw.cmd("MAIL FROM:<app@example.com>")
    await raw.cmd("RCPT TO:<bob@dest.test>")
    await raw.send(b"BDAT 1500\r\n" + b"x" * 1500)
    assert (await raw.reply())[0] == 250
    await raw.send(b"BDAT 1500 LAST\r\n" + b"y" * 1500)
    assert await raw.reply() == (552, "5.3.4 Message size exceeds fixed maximum")
    assert (await raw.cmd("NOOP"))[0] == 250
    # Over the limit in a middle chunk: 552 at once; the rest of the message gets 503.
    await raw.cmd("MAIL FROM:<app@example.com>")
    await raw.cmd("RCPT TO:<bob@dest.test>")
    await raw.send(b"BDAT 3000\r\n" + b"x" * 3000 + b"BDAT 3 LAST\r\nabc")
    assert (await raw.reply())[0] == 552
    assert (await raw.reply())[0] == 503
    assert (await raw.cmd("NOOP"))[0] == 250
    events = await ingest.events(2)
    assert [e.check for e in events] == ["size", "size"]


async def test_bdat_smuggling_checks_apply(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.1/32"])
    raw = await session(ingest)
    await raw.cmd("MAIL FROM:<app@example.com>")
    await raw.cmd("RCPT TO:<bob@dest.test>")
    data = HEAD + b"bare\nlf\r\n"
    await raw.send(b"BDAT %d LAST\r\n" % len(data) + data)
    assert (await raw.reply())[:1] == (550,)
