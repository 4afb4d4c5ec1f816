"""A full disk on the embedded bus: writes refused whole, nothing acknowledged lost, the file
intact, and writing again once room returns.

``embedded.max_size`` caps the file with SQLite's ``max_page_count``: past it SQLite answers
SQLITE_FULL exactly as when the disk itself is full (a loop-mounted small file system would
need root; the error SQLite raises and how it rolls back are the same).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig
from shared.errors import BusFull, BusUnavailable
from shared.wire.topics import DEAD, EVENTS, SUBMITTED, OutRecord

CAP = 512 * 1024
FILLER = DEAD.name  # what "other files on the disk" are here: deleted to make room


@pytest.fixture
async def capped(tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "b.db", partitions=1, max_size=CAP))
    await bus.start()
    yield bus
    await bus.close()


async def fill(bus: EmbeddedBus, topic: str, size: int) -> list[bytes]:
    """Publish ``size``-byte records until the bus is full; what it acknowledged."""
    acknowledged: list[bytes] = []
    for n in range(10_000):
        value = n.to_bytes(4, "big") * (size // 4)
        try:
            await bus.publish([OutRecord(topic, b"k", value)], timeout=10)
        except BusFull:
            return acknowledged
        acknowledged.append(value)
    raise AssertionError("the capped file never filled")


async def stored(bus: EmbeddedBus, topic: str) -> list[bytes]:
    probe = bus.consumer(f"probe-{topic}", [topic])
    await probe.start()
    found: list[bytes] = []
    while batch := await probe.fetch(max_records=1000, timeout=0.1):
        found += [m.value or b"" for m in batch]
    await probe.stop()
    return found


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def free_room(path: Path) -> None:
    """The operator deletes other data: freed pages are reused below the cap."""
    with sqlite3.connect(path, timeout=30) as conn:
        conn.execute("DELETE FROM records WHERE topic = ?", (FILLER,))


async def test_a_full_file_refuses_whole_writes_keeps_what_it_acknowledged_and_resumes(
    capped: EmbeddedBus, tmp_path: Path
) -> None:
    path = tmp_path / "b.db"
    filler = await fill(capped, FILLER, 16 * 1024)
    mail = await fill(capped, SUBMITTED.name, 2 * 1024)  # what is left, in smaller records
    assert filler and len(path.read_bytes()) <= CAP + 64 * 1024  # the WAL is not counted

    # Full: a publish of several records fails whole; a BusFull is a BusUnavailable.
    many = [OutRecord(SUBMITTED.name, b"m", b"x" * 4096) for _ in range(8)]
    with pytest.raises(BusUnavailable):
        await capped.publish(many, timeout=10)
    assert await stored(capped, SUBMITTED.name) == mail
    assert integrity(path) == "ok"

    free_room(path)
    await capped.publish(many, timeout=10)
    assert await stored(capped, SUBMITTED.name) == mail + [b"x" * 4096] * 8
    assert integrity(path) == "ok"


async def test_a_stage_transaction_on_a_full_file_changes_nothing(
    capped: EmbeddedBus, tmp_path: Path
) -> None:
    await capped.publish([OutRecord(SUBMITTED.name, b"m", b"in")], timeout=10)
    consumer = capped.consumer("stage", [SUBMITTED.name])
    await consumer.start()
    try:
        [message] = await consumer.fetch(timeout=1)
        await fill(capped, FILLER, 16 * 1024)
        await fill(capped, FILLER, 512)
        with pytest.raises(BusFull):
            async with consumer.transaction() as txn:
                await txn.publish(OutRecord(EVENTS.name, b"m", b"y" * 8192))
                txn.commit_offsets({message.tp: message.offset + 1})
        assert await consumer.committed(message.tp) == 0
        assert await stored(capped, EVENTS.name) == []

        free_room(tmp_path / "b.db")
        [again] = await consumer.fetch(timeout=1)  # rewound: the same record once more
        async with consumer.transaction() as txn:
            await txn.publish(OutRecord(EVENTS.name, b"m", b"y" * 8192))
            txn.commit_offsets({again.tp: again.offset + 1})
        assert await consumer.committed(again.tp) == 1
    finally:
        await consumer.stop()
