"""The bus contract (``shared/bus/base.py``), run against both adapters.

Every test runs on the embedded bus and, marked ``kafka``, on the real broker. Topics are
the declared ones (``shared.wire.topics``) so Kafka creates them with their real settings
(partitions, compaction, max message size); ``topic_prefix`` keeps tests apart.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from shared.bus.base import BusMessage, TopicPartition
from shared.errors import TransactionAborted
from shared.wire.topics import EVENTS, OUTBOUND, SUBMITTED, SUPPRESSIONS, OutRecord
from tests.shared.bus.buses import Follower, fetch_count, fetch_until, values
from tests.shared.bus.conftest import Buses

CHILD = Path(__file__).with_name("txn_child.py")
MiB = 1024 * 1024


def rec(topic: str, key: str, value: str) -> OutRecord:
    """A record with text key and value."""
    return OutRecord(topic, key.encode(), value.encode())


def positions(messages: list[BusMessage]) -> set[tuple[TopicPartition, int]]:
    """Where each message is on the bus."""
    return {(m.tp, m.offset) for m in messages}


async def test_publish_is_durable_across_restart(buses: Buses) -> None:
    bus = await buses.open("durable-a")
    await bus.ensure_topics([SUBMITTED.name])
    await bus.publish([rec(SUBMITTED.name, "m1", "one"), rec(SUBMITTED.name, "m2", "two")])
    await bus.publish([rec(SUBMITTED.name, "m3", "three")])
    await buses.close(bus)

    reopened = await buses.open("durable-b")
    follower = Follower(reopened, SUBMITTED.name)
    got = await follower.wait_until(lambda ms: len(ms) >= 3)
    await follower.stop()
    assert {(m.key, m.value) for m in got} == {(b"m1", b"one"), (b"m2", b"two"), (b"m3", b"three")}


async def test_uncommitted_batch_is_redelivered_to_the_next_member(buses: Buses) -> None:
    bus = await buses.open()
    await bus.ensure_topics([SUBMITTED.name])
    await bus.publish([rec(SUBMITTED.name, f"m{i}", f"v{i}") for i in range(6)])
    first = bus.consumer("redeliver", [SUBMITTED.name])
    await first.start()
    seen = await fetch_count(first, 6)
    await first.stop()  # nothing committed

    second = bus.consumer("redeliver", [SUBMITTED.name])
    await second.start()
    again = await fetch_count(second, 6)
    await second.stop()
    assert positions(again) == positions(seen)
    assert [m.value for m in sorted(again, key=lambda m: (m.tp, m.offset))] == [
        m.value for m in sorted(seen, key=lambda m: (m.tp, m.offset))
    ]


async def test_aborted_transaction_writes_nothing_and_rewinds(buses: Buses) -> None:
    bus = await buses.open()
    await bus.ensure_topics([SUBMITTED.name, OUTBOUND.name])
    await bus.publish([rec(SUBMITTED.name, "m1", "in-1"), rec(SUBMITTED.name, "m2", "in-2")])
    consumer = bus.consumer("abort", [SUBMITTED.name])
    await consumer.start()
    batch = await fetch_count(consumer, 2)
    offsets = {m.tp: m.offset + 1 for m in batch}

    class Boom(Exception):
        pass

    try:
        async with consumer.transaction() as txn:
            await txn.publish(rec(OUTBOUND.name, "d", "aborted"))
            txn.commit_offsets(offsets)
            raise Boom
    except Boom:
        pass
    for tp in offsets:
        assert await consumer.committed(tp) == 0
    refetched = await fetch_count(consumer, 2)
    assert positions(refetched) == positions(batch)

    # A committed transaction after the aborted one, same key hence same partition: once a
    # read_committed reader sees it, it has passed where the aborted output would be.
    async with consumer.transaction() as txn:
        await txn.publish(rec(OUTBOUND.name, "d", "committed"))
        txn.commit_offsets(offsets)
    follower = Follower(bus, OUTBOUND.name)
    got = await follower.wait_until(lambda ms: b"committed" in values(ms))
    await follower.stop()
    assert values(got) == [b"committed"]
    for tp, offset in offsets.items():
        assert await consumer.committed(tp) == offset
    await consumer.stop()


async def run_child(buses: Buses, *, total: int, kill_at_batch: int) -> int:
    """Run ``txn_child.py`` against this test's bus; its exit status."""
    argv = [
        sys.executable,
        str(CHILD),
        *buses.target.argv(),
        "--instance",
        "crash-child",
        "--group",
        "crash",
        "--input",
        SUBMITTED.name,
        "--output",
        OUTBOUND.name,
        "--total",
        str(total),
        "--batch-size",
        "4",
        "--kill-at-batch",
        str(kill_at_batch),
    ]
    child = await asyncio.create_subprocess_exec(*argv)
    async with asyncio.timeout(120):
        return await child.wait()


async def test_sigkill_between_publish_and_commit_leaves_each_output_once(buses: Buses) -> None:
    total = 24
    bus = await buses.open("crash-parent")
    await bus.ensure_topics([SUBMITTED.name, OUTBOUND.name])
    await bus.publish([rec(SUBMITTED.name, f"m{i:02}", f"v{i}") for i in range(total)])

    assert await run_child(buses, total=total, kill_at_batch=3) == -signal.SIGKILL
    assert await run_child(buses, total=total, kill_at_batch=0) == 0

    follower = Follower(bus, OUTBOUND.name)
    await follower.wait_until(lambda ms: len({m.key for m in ms}) >= total)
    # A duplicate could sit anywhere in the log: read on until nothing more arrives.
    count = -1
    while count != len(follower.messages):
        count = len(follower.messages)
        await asyncio.sleep(1.0)
    await follower.stop()
    per_key = Counter(m.key for m in follower.messages)
    assert per_key == Counter({f"m{i:02}".encode(): 1 for i in range(total)})


async def test_order_is_kept_per_key(buses: Buses) -> None:
    bus = await buses.open()
    await bus.ensure_topics([OUTBOUND.name])
    keys = [f"domain{k}.test" for k in range(5)]
    for start in range(0, 60, 6):
        await bus.publish(
            [rec(OUTBOUND.name, k, f"{k}:{i}") for i in range(start, start + 6) for k in keys]
        )
    consumer = bus.consumer("order", [OUTBOUND.name])
    await consumer.start()
    got = await fetch_count(consumer, 300)
    await consumer.stop()
    for key in keys:
        mine = [m for m in got if m.key == key.encode()]
        assert len({m.partition for m in mine}) == 1
        assert [m.value for m in mine] == [f"{key}:{i}".encode() for i in range(60)]
        assert [m.offset for m in mine] == sorted(m.offset for m in mine)


async def test_a_30_mib_record_round_trips(buses: Buses) -> None:
    bus = await buses.open()
    await bus.ensure_topics([SUBMITTED.name])
    payload = os.urandom(30 * MiB)
    await bus.publish([OutRecord(SUBMITTED.name, b"big", payload)])
    consumer = bus.consumer("large", [SUBMITTED.name])
    await consumer.start()
    got = await fetch_count(consumer, 1)
    await consumer.stop()
    assert len(got) == 1
    assert got[0].key == b"big"
    assert got[0].value == payload


async def test_many_concurrent_publishes_all_succeed(buses: Buses) -> None:
    bus = await buses.open()
    await bus.ensure_topics([EVENTS.name])
    count = 200
    await asyncio.gather(*(bus.publish([rec(EVENTS.name, f"m{i}", f"e{i}")]) for i in range(count)))
    follower = Follower(bus, EVENTS.name)
    got = await follower.wait_until(lambda ms: len(ms) >= count)
    await follower.stop()
    assert sorted(m.value or b"" for m in got) == sorted(f"e{i}".encode() for i in range(count))


async def test_pause_and_resume_a_partition(buses: Buses) -> None:
    bus = await buses.open()
    await bus.ensure_topics([OUTBOUND.name])
    await bus.publish([rec(OUTBOUND.name, "slow.test", "first")])
    consumer = bus.consumer("pause", [OUTBOUND.name])
    await consumer.start()
    (first,) = await fetch_count(consumer, 1)

    consumer.pause(first.tp)
    await bus.publish([rec(OUTBOUND.name, "slow.test", "second")])
    assert await consumer.fetch(timeout=1.5) == []

    consumer.resume(first.tp)
    (second,) = await fetch_count(consumer, 1)
    await consumer.stop()
    # Kafka's transaction markers take offsets too: "after", not "right after".
    assert (second.tp, second.value) == (first.tp, b"second")
    assert second.offset > first.offset


async def test_read_table_keeps_the_last_value_and_drops_tombstones(buses: Buses) -> None:
    bus = await buses.open()
    topic = SUPPRESSIONS.name
    await bus.ensure_topics([topic])
    await bus.publish([rec(topic, "a@x.test", "a1"), rec(topic, "b@x.test", "b1")])
    await bus.publish([rec(topic, "a@x.test", "a2"), rec(topic, "c@x.test", "c1")])
    await bus.publish([SUPPRESSIONS.tombstone("c@x.test")])
    assert await bus.read_table(topic) == {b"a@x.test": b"a2", b"b@x.test": b"b1"}


async def test_read_to_end_gives_every_record_once_then_ends(buses: Buses) -> None:
    bus = await buses.open()
    topic = EVENTS.name
    await bus.ensure_topics([topic])
    assert [m async for m in bus.read_to_end(topic)] == []
    await bus.publish([rec(topic, f"k{i % 5}", f"v{i}") for i in range(30)])
    await bus.publish([rec(topic, "k0", "last")])
    got = [m async for m in bus.read_to_end(topic)]
    # Every record, not the last per key; in offset order within each partition.
    assert sorted(m.value or b"" for m in got) == sorted(
        [f"v{i}".encode() for i in range(30)] + [b"last"]
    )
    for partition in {m.partition for m in got}:
        offsets = [m.offset for m in got if m.partition == partition]
        assert offsets == sorted(offsets)
    assert len(positions(got)) == 31
    await bus.publish([rec(topic, "k1", "later")])
    assert len([m async for m in bus.read_to_end(topic)]) == 32


async def test_read_to_end_since_starts_at_the_first_record_at_or_after_it(
    buses: Buses,
) -> None:
    bus = await buses.open()
    topic = EVENTS.name
    await bus.ensure_topics([topic])
    await bus.publish([rec(topic, f"k{i}", f"old{i}") for i in range(12)])
    old = [m async for m in bus.read_to_end(topic)]
    # A point after every old record's timestamp (Kafka keeps milliseconds).
    boundary = max(m.timestamp for m in old) + 0.002
    await asyncio.sleep(max(0.0, boundary - time.time()) + 0.01)
    await bus.publish([rec(topic, f"k{i}", f"new{i}") for i in range(12)])
    got = [m async for m in bus.read_to_end(topic, since=boundary)]
    assert sorted(m.value or b"" for m in got) == sorted(f"new{i}".encode() for i in range(12))
    assert [m async for m in bus.read_to_end(topic, since=time.time() + 3600)] == []
    assert len([m async for m in bus.read_to_end(topic, since=0.0)]) == 24


async def test_a_batch_fetched_before_its_partitions_moved_cannot_be_committed(
    buses: Buses,
) -> None:
    # A stage still working on a batch when a new member joins must not commit it: the new
    # owner reads the same records again from the committed offset (exactly once).
    bus = await buses.open()
    await bus.ensure_topics([SUBMITTED.name, OUTBOUND.name])
    await bus.publish([rec(SUBMITTED.name, f"m{i}", f"in-{i}") for i in range(40)])
    first = bus.consumer("stale", [SUBMITTED.name])
    await first.start()
    batch = await fetch_until(first, lambda ms: len(ms) >= 40)
    offsets: dict[TopicPartition, int] = {}
    for message in batch:
        offsets[message.tp] = message.offset + 1
    second = bus.consumer("stale", [SUBMITTED.name])
    await second.start()
    async with asyncio.timeout(60):
        while not (first.assignment() and second.assignment()):
            await asyncio.gather(first.fetch(timeout=0.2), second.fetch(timeout=0.2))
    with pytest.raises(TransactionAborted):
        async with first.transaction() as txn:
            await txn.publish(rec(OUTBOUND.name, "stale", "from-the-old-batch"))
            txn.commit_offsets(offsets)
    # The second member commits what it owns; the stale output never becomes visible.
    owned = second.assignment()
    async with second.transaction() as txn:
        await txn.publish(rec(OUTBOUND.name, "fresh", "from-the-owner"))
        txn.commit_offsets({tp: 0 for tp in owned})
    follower = Follower(bus, OUTBOUND.name)
    got = await follower.wait_until(lambda ms: b"from-the-owner" in values(ms))
    await follower.stop()
    assert b"from-the-old-batch" not in values(got)
    await second.stop()
    await first.stop()


async def test_revoke_hook_commits_finished_work_before_partitions_move(buses: Buses) -> None:
    # The deliverer commits finished deliveries in this hook, so a joining member does not
    # send them again: the new member must start after what the hook committed.
    bus = await buses.open()
    await bus.ensure_topics([SUBMITTED.name, OUTBOUND.name])
    await bus.publish([rec(SUBMITTED.name, f"m{i}", f"in-{i}") for i in range(40)])
    first = bus.consumer("handover", [SUBMITTED.name])
    await first.start()
    batch = await fetch_until(first, lambda ms: len(ms) >= 40)
    owned_at_hook: list[frozenset[TopicPartition]] = []

    async def commit_finished_work() -> None:
        owned_at_hook.append(first.assignment())
        async with first.transaction() as txn:
            await txn.publish(rec(OUTBOUND.name, "done", "finished-before-handover"))
            txn.commit_offsets({m.tp: m.offset + 1 for m in batch})

    first.on_revoke(commit_finished_work)
    second = bus.consumer("handover", [SUBMITTED.name])
    await second.start()
    async with asyncio.timeout(60):
        while not (first.assignment() and second.assignment()):
            await asyncio.gather(first.fetch(timeout=0.2), second.fetch(timeout=0.2))
    assert owned_at_hook and owned_at_hook[0] >= {m.tp for m in batch}
    assert await second.fetch(timeout=1.0) == []  # nothing left to redo
    follower = Follower(bus, OUTBOUND.name)
    got = await follower.wait_until(lambda ms: b"finished-before-handover" in values(ms))
    await follower.stop()
    assert values(got).count(b"finished-before-handover") == 1
    await second.stop()
    await first.stop()


async def test_consumers_of_one_group_split_the_partitions(buses: Buses) -> None:
    bus = await buses.open()
    await bus.ensure_topics([OUTBOUND.name])
    await bus.publish([rec(OUTBOUND.name, f"d{i}.test", "x") for i in range(40)])
    one = bus.consumer("split", [OUTBOUND.name])
    await one.start()
    everything = await fetch_until(one, lambda ms: len(ms) >= 40)
    all_tps = {m.tp for m in everything}
    two = bus.consumer("split", [OUTBOUND.name])
    await two.start()

    # Fetching keeps a Kafka member in the group while the rebalance settles. A member
    # learns it lost a partition only when the broker tells it, so both local views are
    # polled until they settle into a split; a split that never comes times out and fails.
    def settled() -> bool:
        a, b = one.assignment(), two.assignment()
        return bool(a) and bool(b) and not a & b and all_tps <= a | b

    async with asyncio.timeout(60):
        while not settled():
            await asyncio.gather(one.fetch(timeout=0.2), two.fetch(timeout=0.2))
    await two.stop()  # its partitions go back to the remaining member
    async with asyncio.timeout(60):
        while not all_tps <= one.assignment():
            await one.fetch(timeout=0.2)
    await one.stop()


async def test_read_at_finds_a_record_by_its_place_and_nothing_elsewhere(buses: Buses) -> None:
    bus = await buses.open()
    await bus.ensure_topics([OUTBOUND.name])
    await bus.publish([rec(OUTBOUND.name, f"at{i}.test", f"value {i}") for i in range(6)])
    consumer = bus.consumer("read-at", [OUTBOUND.name])
    await consumer.start()
    fetched = await fetch_until(consumer, lambda ms: len(ms) >= 6)
    await consumer.stop()
    for message in fetched:
        found = await bus.read_at(message.tp, message.offset)
        assert found is not None
        assert (found.tp, found.offset, found.key, found.value) == (
            message.tp,
            message.offset,
            message.key,
            message.value,
        )
    last = max(fetched, key=lambda m: (m.partition, m.offset))
    assert await bus.read_at(last.tp, last.offset + 100) is None  # not written yet


async def test_partition_of_names_the_partition_a_key_is_published_to(buses: Buses) -> None:
    bus = await buses.open()
    await bus.ensure_topics([OUTBOUND.name])
    keys = [f"domain{i}.test" for i in range(20)]
    await bus.publish([rec(OUTBOUND.name, key, "x") for key in keys])
    consumer = bus.consumer("partition-of", [OUTBOUND.name])
    await consumer.start()
    fetched = await fetch_until(consumer, lambda ms: len(ms) >= len(keys))
    await consumer.stop()
    assert len({m.partition for m in fetched}) > 1  # the keys are spread: a real test
    for message in fetched:
        assert message.key is not None
        assert await bus.partition_of(OUTBOUND.name, message.key) == message.partition
