"""A full disk under ingest on the embedded bus: 452 4.3.1, never a 250 for mail that was not
kept, nothing accepted lost, and 250 again once room returns (``embedded.max_size`` stands in
for the disk: SQLite answers SQLITE_FULL the same way, see tests/shared/bus)."""

from __future__ import annotations

import sqlite3

import aiosmtplib
import pytest

from shared.errors import BusFull
from shared.wire.topics import DEAD, SUBMITTED, OutRecord
from tests.services.ingest.conftest import StartIngest
from tests.services.ingest.sessions import logged_in

CAP = 512 * 1024


def message(n: int) -> bytes:
    body = (f"line {n} of a message\r\n" * 250).encode()  # 5 KiB: more than is left
    return b"From: alice@example.com\r\nTo: bob@dest.test\r\nSubject: full\r\n\r\n" + body


async def test_a_full_disk_answers_452_loses_nothing_and_resumes(
    start_ingest: StartIngest,
) -> None:
    ingest = await start_ingest(embedded={"max_size": CAP, "partitions": 1})
    client = await logged_in(ingest)
    _, reply = await client.sendmail("alice@example.com", ["bob@dest.test"], message(0))
    accepted = [reply.rsplit(" ", 1)[-1]]
    # Everything else on the disk takes the rest of the room, to the last few bytes.
    for size in (16 * 1024, 1024, 64):
        with pytest.raises(BusFull):
            for _ in range(10_000):
                await ingest.bus.publish([OutRecord(DEAD.name, b"f", bytes(size))], timeout=5)
    for n in range(1, 4):
        with pytest.raises(aiosmtplib.SMTPDataError) as info:
            await client.sendmail("alice@example.com", ["bob@dest.test"], message(n))
        assert (info.value.code, info.value.message[:5]) == (452, "4.3.1")

    with sqlite3.connect(ingest.tmp / "bus.db", timeout=30) as conn:  # room returns
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.execute("DELETE FROM records WHERE topic = ?", (DEAD.name,))
    _, reply = await client.sendmail("alice@example.com", ["bob@dest.test"], message(4))
    accepted.append(reply.rsplit(" ", 1)[-1])
    await client.quit()

    submitted = await ingest.records(SUBMITTED, 2)
    assert [s.id for s in submitted] == accepted
