"""What only the embedded bus promises, beyond the contract: retention, limits, errors."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.bus.base import BusMessage
from shared.bus.embedded import EmbeddedBus
from shared.bus.factory import open_bus
from shared.config import Config, CoreConfig, Duration, EmbeddedConfig
from shared.errors import BusUnavailable, RecordTooLarge
from shared.wire.topics import MAX_RECORD_BYTES, SUBMITTED, SUPPRESSIONS, OutRecord
from tests.shared.bus.buses import fetch_count


async def visible(bus: EmbeddedBus, topic: str) -> list[BusMessage]:
    """Everything still stored in ``topic`` (read by a group that never commits)."""
    probe = bus.consumer("probe", [topic])
    await probe.start()
    got: list[BusMessage] = []
    while batch := await probe.fetch(timeout=0.1):
        got += batch
    await probe.stop()
    return got


async def until_kept(bus: EmbeddedBus, topic: str, wanted: list[bytes]) -> None:
    """Poll until exactly ``wanted`` values remain (the sweep runs every second here)."""
    async with asyncio.timeout(15):
        while True:
            if [m.value for m in await visible(bus, topic)] == wanted:
                return
            await asyncio.sleep(0.2)


@pytest.fixture
async def short_lived(tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
    """A one-partition bus whose retention is one second (swept every second)."""
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "b.db", partitions=1, retention=Duration(1)))
    await bus.start()
    yield bus
    await bus.close()


async def test_retention_deletes_only_what_every_group_consumed(short_lived: EmbeddedBus) -> None:
    bus = short_lived
    await bus.publish([OutRecord(SUBMITTED.name, b"k", b"v%d" % i) for i in range(4)])
    consumer = bus.consumer("stage", [SUBMITTED.name])
    await consumer.start()
    batch = await fetch_count(consumer, 2)
    async with consumer.transaction() as txn:
        txn.commit_offsets({batch[1].tp: batch[1].offset + 1})  # records 0 and 1 consumed
    await until_kept(bus, SUBMITTED.name, [b"v2", b"v3"])
    await consumer.stop()


async def test_compacted_topic_keeps_the_last_value_per_key(short_lived: EmbeddedBus) -> None:
    bus = short_lived
    topic = SUPPRESSIONS.name
    await bus.publish([OutRecord(topic, b"a", b"a1"), OutRecord(topic, b"b", b"b1")])
    await bus.publish([OutRecord(topic, b"a", b"a2"), SUPPRESSIONS.tombstone("b")])
    await until_kept(bus, topic, [b"a2"])
    assert await bus.read_table(topic) == {b"a": b"a2"}


async def test_a_record_over_the_limit_is_refused_and_nothing_written(tmp_path: Path) -> None:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "b.db"))
    await bus.start()
    too_big = OutRecord(SUBMITTED.name, b"k", bytes(MAX_RECORD_BYTES + 1))
    with pytest.raises(RecordTooLarge):
        await bus.publish([OutRecord(SUBMITTED.name, b"k", b"small"), too_big])
    assert await visible(bus, SUBMITTED.name) == []
    await bus.close()


async def test_unusable_path_is_bus_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "file" / "b.db"))
    with pytest.raises(BusUnavailable):
        await bus.start()


async def test_publish_before_start_and_after_close_is_bus_unavailable(tmp_path: Path) -> None:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "b.db"))
    record = OutRecord(SUBMITTED.name, b"k", b"v")
    with pytest.raises(BusUnavailable):
        await bus.publish([record])
    await bus.start()
    await bus.publish([record])
    await bus.close()
    with pytest.raises(BusUnavailable):
        await bus.publish([record])


async def test_follow_ends_when_the_bus_closes(tmp_path: Path) -> None:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "b.db"))
    await bus.start()
    await bus.publish([OutRecord(SUBMITTED.name, b"k", b"v")])
    seen: list[BusMessage] = []
    first = asyncio.Event()

    async def read_all() -> None:
        async for message in bus.follow(SUBMITTED.name):
            seen.append(message)
            first.set()

    reader = asyncio.create_task(read_all())
    async with asyncio.timeout(10):
        await first.wait()
        await bus.close()
        await reader  # returns instead of waiting for more
    assert [m.value for m in seen] == [b"v"]


async def test_a_timed_out_publish_is_never_visible(tmp_path: Path) -> None:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "b.db"))
    await bus.start()
    # A big record keeps the writer busy while small ones wait with a tiny deadline: each
    # one either returns (and is visible) or raises BusUnavailable (and is never visible).
    big = asyncio.create_task(
        bus.publish([OutRecord(SUBMITTED.name, b"big", bytes(20 * 1024 * 1024))])
    )
    await asyncio.sleep(0.05)  # let the writer take it alone (the assertions hold either way)
    small = [
        bus.publish([OutRecord(SUBMITTED.name, b"k%d" % i, b"v%d" % i)], timeout=0.001)
        for i in range(20)
    ]
    outcomes = await asyncio.gather(big, *small, return_exceptions=True)
    assert outcomes[0] is None
    assert all(o is None or isinstance(o, BusUnavailable) for o in outcomes)
    acknowledged = {b"v%d" % i for i, o in enumerate(outcomes[1:]) if o is None}
    await bus.publish([OutRecord(SUBMITTED.name, b"last", b"last")])  # behind everything
    stored = {m.value for m in await visible(bus, SUBMITTED.name) if m.key != b"big"}
    assert stored == acknowledged | {b"last"}
    await bus.close()


async def test_one_owner_per_file_and_clients_beside_it(tmp_path: Path) -> None:
    config = EmbeddedConfig(path=tmp_path / "b.db", partitions=1)
    owner = EmbeddedBus(config, lock=True)
    await owner.start()
    assert (tmp_path / "b.db.lock").read_text() == f"{os.getpid()}\n"
    second = EmbeddedBus(config, lock=True)
    with pytest.raises(BusUnavailable, match=f"already in use by process {os.getpid()}"):
        await second.start()
    client = EmbeddedBus(config)  # what the CLI's read and admin commands open
    await client.start()
    await client.publish([OutRecord(SUPPRESSIONS.name, b"a@x", b"1")])
    assert await owner.read_table(SUPPRESSIONS.name) == {b"a@x": b"1"}
    await client.close()
    await owner.close()
    await second.start()  # the owner's close released the lock
    await second.close()


def test_the_factory_locks_for_stages_only(tmp_path: Path) -> None:
    core = CoreConfig(embedded=EmbeddedConfig(path=tmp_path / "b.db"))
    config = Config(core, "test.toml", {})
    assert open_bus(config)._take_lock  # type: ignore[attr-defined]
    assert not open_bus(config, owner=False)._take_lock  # type: ignore[attr-defined]


async def test_a_consumer_group_lives_in_one_process(tmp_path: Path) -> None:
    # Two buses on one file stand for two stage processes of one run (flock locks belong
    # to the open file, so two opens in one process exclude each other as two processes do).
    config = EmbeddedConfig(path=tmp_path / "b.db", partitions=2)
    first, second = EmbeddedBus(config), EmbeddedBus(config)
    await first.start()
    await second.start()
    holder = first.consumer("postline-signer", [SUBMITTED.name])
    await holder.start()
    also_here = first.consumer("postline-signer", [SUBMITTED.name])  # same process: shares
    await also_here.start()
    intruder = second.consumer("postline-signer", [SUBMITTED.name])
    with pytest.raises(BusUnavailable, match=f"group postline-signer .* process {os.getpid()}"):
        await intruder.start()
    other_group = second.consumer("postline-deliverer", [SUBMITTED.name])
    await other_group.start()  # another group is another lock
    assert len(other_group.assignment()) == 2
    await holder.stop()
    with pytest.raises(BusUnavailable):  # still one member of the group in the first
        await second.consumer("postline-signer", [SUBMITTED.name]).start()
    await also_here.stop()
    taker = second.consumer("postline-signer", [SUBMITTED.name])
    await taker.start()  # the group's last member left: the lock went with it
    assert len(taker.assignment()) == 2
    await first.close()
    await second.close()


async def test_a_watching_bus_sees_another_process_commit_without_its_slow_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the watch, a waiting fetch finds another process's records only at its own
    # poll; that poll is made longer than the fetch here, so only the watch can wake it.
    monkeypatch.setattr("shared.bus.embedded_consumer.POLL_INTERVAL", 3600.0)
    config = EmbeddedConfig(path=tmp_path / "b.db", partitions=1)
    reader, writer = EmbeddedBus(config, watch_others=True), EmbeddedBus(config)
    await reader.start()
    await writer.start()
    consumer = reader.consumer("postline-signer", [SUBMITTED.name])
    await consumer.start()
    fetching = asyncio.create_task(consumer.fetch(timeout=30))
    await asyncio.sleep(0.2)  # the fetch found nothing and waits
    assert not fetching.done()
    await writer.publish([OutRecord(SUBMITTED.name, b"k", b"from the other process")])
    batch = await asyncio.wait_for(fetching, 30)
    assert [m.value for m in batch] == [b"from the other process"]
    # Another process's write to another topic wakes the readers of that topic only.
    submitted = reader.changed_for(frozenset([SUBMITTED.name]))
    suppressions = reader.changed_for(frozenset([SUPPRESSIONS.name]))
    await writer.publish([OutRecord(SUPPRESSIONS.name, b"a@x", b"1")])
    await asyncio.wait_for(suppressions.wait(), 30)
    assert not submitted.is_set()
    await consumer.stop()
    await writer.close()
    await reader.close()


async def test_a_commit_wakes_only_the_readers_of_what_it_wrote(tmp_path: Path) -> None:
    # Every fetch and follow waits on its topics' event between reads: a commit to another
    # topic, or of offsets alone, must not send them all back to SQLite for nothing.
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "b.db", partitions=1))
    await bus.start()
    submitted = bus.changed_for(frozenset([SUBMITTED.name]))
    either = bus.changed_for(frozenset([SUPPRESSIONS.name, SUBMITTED.name]))
    await bus.publish([OutRecord(SUPPRESSIONS.name, b"a@x", b"1")])
    assert either.is_set() and not submitted.is_set()
    consumer = bus.consumer("stage", [SUPPRESSIONS.name])
    await consumer.start()
    (record,) = await fetch_count(consumer, 1)
    async with consumer.transaction() as txn:  # offsets only
        txn.commit_offsets({record.tp: record.offset + 1})
    assert not submitted.is_set()
    await bus.publish([OutRecord(SUBMITTED.name, b"k", b"v")])
    assert submitted.is_set()
    assert not bus.changed_for(frozenset([SUBMITTED.name])).is_set()  # a new wait after the wake-up
    await consumer.stop()
    await bus.close()
