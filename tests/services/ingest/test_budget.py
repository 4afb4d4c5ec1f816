"""Bounded memory under hostile and concurrent input (issue 11, items 4 and 6), over real sockets.

What is asserted is ingest's own count of message bytes held (``BodyBudget``, exported as
``postline_ingest_buffered_bytes``), never RSS or timings: the peak RSS figures belong to
``bench/bench_memory.py``.
"""

from __future__ import annotations

from services.ingest.budget import NO_ROOM, BodyBudget
from shared.wire.topics import SUBMITTED
from tests.services.ingest.client import Raw, until
from tests.services.ingest.conftest import Running, StartIngest

HEAD = b"From: app@example.com\r\nSubject: budget\r\nMessage-ID: <b@x>\r\nDate: x\r\n\r\n"
GAUGE = "postline_ingest_buffered_bytes"
#: Chunk data arrives in pieces of at most 64 KiB; a refused chunk must not hold even one.
SMALL = 64 * 1024


def budget(ingest: Running) -> BodyBudget:
    return ingest.stage.core.budget


async def session(ingest: Running, listener: str = "relay") -> Raw:
    raw = await Raw.open(ingest.port(listener))
    await raw.reply()
    assert (await raw.cmd("EHLO client.test"))[0] == 250
    return raw


async def send_chunk(raw: Raw, size: int, last: bool = False) -> None:
    """``BDAT size [LAST]`` and ``size`` octets, written a piece at a time."""
    await raw.send(b"BDAT %d%s\r\n" % (size, b" LAST" if last else b""))
    piece = b"x" * 1024 * 1024
    for start in range(0, size, len(piece)):
        await raw.send(piece[: min(len(piece), size - start)])


async def transaction(raw: Raw) -> None:
    assert (await raw.cmd("MAIL FROM:<app@example.com>"))[0] == 250
    assert (await raw.cmd("RCPT TO:<bob@dest.test>"))[0] == 250


async def test_unauthenticated_bdat_is_refused_before_its_data_is_stored(
    start_ingest: StartIngest,
) -> None:
    ingest = await start_ingest()
    raw = await session(ingest, "submission")  # AUTH required; plaintext, so no AUTH possible
    await send_chunk(raw, 10_000_000, last=True)
    assert await raw.reply(timeout=60) == (530, "5.7.0 Authentication required")
    assert (await raw.cmd("NOOP"))[0] == 250  # every octet consumed: the session is in step
    # Nothing of the 10 MB was kept: the refusal was decided before the first octet.
    assert budget(ingest).peak <= SMALL
    assert ingest.ctx.registry.get_sample_value(GAUGE) == 0.0
    await raw.close()


async def test_bdat_refused_for_state_or_size_stores_nothing(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(
        trusted_networks=["127.0.0.1/32"], limits={"max_message_size": "1MiB"}
    )
    raw = await session(ingest)
    await send_chunk(raw, 3_000_000)  # no MAIL, no RCPT
    assert (await raw.reply(timeout=60))[0] == 503
    await transaction(raw)
    await send_chunk(raw, 3_000_000, last=True)  # over max_message_size
    assert (await raw.reply(timeout=60)) == (552, "5.3.4 Message size exceeds fixed maximum")
    assert (await raw.cmd("NOOP"))[0] == 250
    assert budget(ingest).peak <= SMALL
    await raw.close()


async def test_budget_refuses_a_second_body_while_the_first_is_held(
    start_ingest: StartIngest,
) -> None:
    ingest = await start_ingest(
        trusted_networks=["127.0.0.1/32"], limits={"max_buffered_bytes": "1MiB"}
    )
    first, second = await session(ingest), await session(ingest)
    await transaction(first)
    await first.send(b"BDAT %d\r\n" % len(HEAD) + HEAD)
    assert (await first.reply())[0] == 250
    await send_chunk(first, 700_000)
    assert (await first.reply())[0] == 250  # the first message holds 700 KB of the 1 MiB
    await transaction(second)
    await send_chunk(second, 700_000, last=True)
    assert await second.reply() == (NO_ROOM.code, f"{NO_ROOM.enhanced} {NO_ROOM.text}")
    # By DATA the same: the block is read to its end, the reply is 452, nothing is lost.
    await transaction(second)
    assert (await second.cmd("DATA"))[0] == 354
    assert (await second.cmd(HEAD + b"y" * 998 + b"\r\n" + (b"z" * 998 + b"\r\n") * 700 + b"."))[
        :1
    ] == (452,)
    assert budget(ingest).in_use <= 700_000 + SMALL + len(HEAD)
    # The first message completes, gives its bytes back, and the second one now passes.
    await first.send(b"BDAT 0 LAST\r\n")
    assert "queued as" in (await first.reply())[1]
    assert budget(ingest).in_use == 0
    await transaction(second)
    await second.send(b"BDAT %d\r\n" % len(HEAD) + HEAD)
    assert (await second.reply())[0] == 250
    await send_chunk(second, 700_000, last=True)
    assert "queued as" in (await second.reply())[1]
    subs = await ingest.records(SUBMITTED, 2)
    assert all(len(s.data) > 700_000 for s in subs)
    events = await ingest.events(4)
    assert sorted(e.check for e in events) == ["", "", "memory", "memory"]
    assert budget(ingest).peak <= 1024 * 1024
    assert ingest.ctx.registry.get_sample_value(GAUGE) == 0.0
    await first.close()
    await second.close()


async def test_a_client_gone_mid_message_gives_its_bytes_back(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.1/32"])
    chunked, data = await session(ingest), await session(ingest)
    await transaction(chunked)
    await send_chunk(chunked, 500_000)
    assert (await chunked.reply())[0] == 250
    await chunked.send(b"BDAT 400000 LAST\r\n" + b"x" * 100_000)  # then the line drops
    await transaction(data)
    assert (await data.cmd("DATA"))[0] == 354
    await data.send(HEAD + (b"x" * 998 + b"\r\n") * 200)
    await until(lambda: budget(ingest).in_use >= 500_000 + 400_000 + 200_000)
    await chunked.close()
    await data.close()
    await until(lambda: budget(ingest).in_use == 0)


async def test_rset_abandons_a_bdat_transaction(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.1/32"])
    raw = await session(ingest)
    await transaction(raw)
    await send_chunk(raw, 100_000)
    assert (await raw.reply())[0] == 250
    assert (await raw.cmd("RSET"))[0] == 250
    assert budget(ingest).in_use == 0
    # A new transaction starts empty: DATA is not refused as mixed with the old chunks.
    await transaction(raw)
    assert (await raw.cmd("DATA"))[0] == 354
    assert (await raw.cmd(HEAD + b"body\r\n."))[0] == 250
    [sub] = await ingest.records(SUBMITTED, 1)
    assert b"xxxx" not in sub.data
    await raw.close()
