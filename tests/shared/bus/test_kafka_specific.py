"""Kafka-only behaviour of the bus: namespaces, deadlines, size limits, fencing, group commit.

The behaviour both adapters share is in ``test_contract.py``; these cover what only the
Kafka adapter has (topic prefixes, an unreachable or silent broker, broker-side size limits,
transactional ids).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.bus.base import BusMessage, Consumer
from shared.bus.kafka import KafkaBus
from shared.bus.kafka_common import client_kwargs
from shared.bus.kafka_producer import discard_producer, open_producer
from shared.config import Duration, KafkaConfig
from shared.errors import BusUnavailable, RecordTooLarge, TransactionAborted
from shared.wire.topics import DEAD, EVENTS, MAX_RECORD_BYTES, SUPPRESSIONS, MiB, OutRecord

pytestmark = pytest.mark.kafka


@pytest.fixture
def config(kafka_bootstrap: str, topic_prefix: str) -> KafkaConfig:
    return KafkaConfig(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)


@pytest.fixture
async def bus(config: KafkaConfig) -> AsyncIterator[KafkaBus]:
    bus = KafkaBus(config, instance="specific")
    await bus.ensure_topics([EVENTS.name, SUPPRESSIONS.name])
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


def rec(topic: str, key: str, value: bytes) -> OutRecord:
    return OutRecord(topic, key.encode(), value)


async def test_topic_prefix_isolates_namespaces(
    bus: KafkaBus, kafka_bootstrap: str, topic_prefix: str
) -> None:
    other = KafkaBus(KafkaConfig(bootstrap=kafka_bootstrap, topic_prefix="o" + topic_prefix), "o")
    await other.ensure_topics([EVENTS.name])
    await other.start()
    try:
        await bus.publish([rec(EVENTS.name, "m1", b"mine")])
        await other.publish([rec(EVENTS.name, "m1", b"theirs")])

        assert await bus.read_table(EVENTS.name) == {b"m1": b"mine"}
        assert await other.read_table(EVENTS.name) == {b"m1": b"theirs"}
    finally:
        await other.close()
    admin = AIOKafkaAdminClient(**client_kwargs(bus.config))
    await admin.start()
    try:
        wire_topics = set(await admin.list_topics())
    finally:
        await admin.close()
    assert {topic_prefix + EVENTS.name, "o" + topic_prefix + EVENTS.name} <= wire_topics


async def test_messages_carry_logical_topic_names(bus: KafkaBus) -> None:
    await bus.publish([rec(SUPPRESSIONS.name, "a@x.test", b"1")])
    consumer = bus.consumer("names", [SUPPRESSIONS.name])
    await consumer.start()
    try:
        got: list[BusMessage] = []
        async with asyncio.timeout(30):
            while not got:
                got = await consumer.fetch(timeout=0.5)
        owned = consumer.assignment()
    finally:
        await consumer.stop()
    assert got[0].topic == SUPPRESSIONS.name
    assert {tp.topic for tp in owned} == {SUPPRESSIONS.name}
    assert len(owned) == SUPPRESSIONS.partitions


async def test_start_on_a_closed_port_is_bus_unavailable(unused_tcp_port: int) -> None:
    dead = KafkaConfig(bootstrap=f"127.0.0.1:{unused_tcp_port}", request_timeout=Duration(2))
    bus = KafkaBus(dead, instance="dead")

    with pytest.raises(BusUnavailable):
        await bus.start()
    with pytest.raises(BusUnavailable):
        await bus.publish([rec(EVENTS.name, "m", b"v")], timeout=1)


async def test_start_against_a_silent_server_is_bus_unavailable() -> None:
    # Accepts connections and never answers: a hung broker, not a refused one.
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    silent = KafkaConfig(bootstrap=f"127.0.0.1:{port}", request_timeout=Duration(1))
    try:
        with pytest.raises(BusUnavailable):
            await KafkaBus(silent, instance="silent").start()
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_publish_past_its_deadline_is_unavailable_and_never_visible(bus: KafkaBus) -> None:
    # The second topic does not exist (auto-creation is off), so the transaction cannot
    # complete before the deadline; the first record must not appear either.
    doomed = [rec(EVENTS.name, "doomed", b"x"), rec("postline.missing", "k", b"y")]

    with pytest.raises(BusUnavailable):
        await bus.publish(doomed, timeout=1.0)
    await bus.publish([rec(EVENTS.name, "after", b"ok")], timeout=30)

    assert await bus.read_table(EVENTS.name) == {b"after": b"ok"}


async def test_record_too_large_for_its_topic_fails_only_its_caller(bus: KafkaBus) -> None:
    # postline.suppressions accepts 1 MiB; random bytes do not compress below that.
    big = rec(SUPPRESSIONS.name, "big@x.test", os.urandom(2 * MiB))
    small = rec(SUPPRESSIONS.name, "small@x.test", b"ok")

    results = await asyncio.gather(
        bus.publish([big], timeout=30), bus.publish([small], timeout=30), return_exceptions=True
    )

    assert isinstance(results[0], RecordTooLarge)
    assert results[1] is None
    assert await bus.read_table(SUPPRESSIONS.name) == {b"small@x.test": b"ok"}


async def test_record_over_the_bus_limit_is_refused_before_sending(bus: KafkaBus) -> None:
    huge = rec(EVENTS.name, "huge", bytes(MAX_RECORD_BYTES + 1))

    with pytest.raises(RecordTooLarge):
        await bus.publish([huge], timeout=30)


async def test_a_restarted_instance_fences_the_old_publisher(config: KafkaConfig) -> None:
    old = KafkaBus(config, instance="same")
    await old.ensure_topics([EVENTS.name])
    await old.start()
    new = KafkaBus(config, instance="same")
    await new.start()  # same transactional id: the old producer is fenced
    # Two records each: a publish of several is a transaction (one record goes without).
    try:
        with pytest.raises(BusUnavailable):
            await old.publish([rec(EVENTS.name, "zombie", b"x"), rec(EVENTS.name, "z2", b"x")], 30)
        await new.publish([rec(EVENTS.name, "live", b"y"), rec(EVENTS.name, "l2", b"y")], 30)
    finally:
        await old.close()
        await new.close()
    reader = KafkaBus(config, instance="reader")
    assert await reader.read_table(EVENTS.name) == {b"live": b"y", b"l2": b"y"}


async def test_too_large_output_aborts_the_stage_transaction_and_the_next_one_works(
    bus: KafkaBus,
) -> None:
    await bus.publish([rec(EVENTS.name, "m1", b"in")])
    consumer = bus.consumer("too-large", [EVENTS.name])
    await consumer.start()
    try:
        (message,) = await _fetch(consumer, 1)
        offsets = {message.tp: message.offset + 1}

        with pytest.raises(RecordTooLarge):
            async with consumer.transaction() as txn:
                await txn.publish(rec(SUPPRESSIONS.name, "big@x.test", os.urandom(2 * MiB)))
                txn.commit_offsets(offsets)
        assert await consumer.committed(message.tp) == 0
        (again,) = await _fetch(consumer, 1)  # rewound: the input comes back
        assert (again.tp, again.offset) == (message.tp, message.offset)

        async with consumer.transaction() as txn:
            await txn.publish(rec(SUPPRESSIONS.name, "small@x.test", b"ok"))
            txn.commit_offsets(offsets)
        assert await consumer.committed(message.tp) == message.offset + 1
    finally:
        await consumer.stop()
    assert await bus.read_table(SUPPRESSIONS.name) == {b"small@x.test": b"ok"}


async def test_concurrent_publishes_share_transactions(bus: KafkaBus) -> None:
    # postline.dead has one partition, and every committed transaction leaves one commit
    # marker in it: one transaction per publish would end the log at 3 * count.
    await bus.ensure_topics([DEAD.name])
    count = 25
    pairs = [[rec(DEAD.name, f"m{i}", b"x"), rec(DEAD.name, f"n{i}", b"x")] for i in range(count)]

    await asyncio.gather(*(bus.publish(pair) for pair in pairs))

    end = await _end_of_dead(bus)
    assert 2 * count < end < 3 * count


async def test_a_single_record_is_published_without_a_transaction(bus: KafkaBus) -> None:
    # One record is atomic on its own: no transaction, so no commit marker in the log, and
    # every record is there for read_committed readers.
    await bus.ensure_topics([DEAD.name])
    count = 50

    await asyncio.gather(*(bus.publish([rec(DEAD.name, f"m{i}", b"x")]) for i in range(count)))

    assert await _end_of_dead(bus) == count
    assert len(await bus.read_table(DEAD.name)) == count


async def test_a_single_record_past_its_deadline_is_unavailable_and_the_next_one_goes(
    bus: KafkaBus,
) -> None:
    # The topic does not exist (auto-creation is off): the produce cannot complete.
    with pytest.raises(BusUnavailable):
        await bus.publish([rec("postline.missing", "k", b"y")], timeout=1.0)

    await bus.publish([rec(EVENTS.name, "after", b"ok")], timeout=30)

    assert await bus.read_table(EVENTS.name) == {b"after": b"ok"}


async def _end_of_dead(bus: KafkaBus) -> int:
    """Where the log of (one-partition) ``postline.dead`` ends, markers included."""
    reader = AIOKafkaConsumer(**client_kwargs(bus.config), isolation_level="read_committed")
    await reader.start()
    try:
        wire = TopicPartition(bus.config.topic_prefix + DEAD.name, 0)
        return int((await reader.end_offsets([wire]))[wire])
    finally:
        await reader.stop()


async def _fetch(consumer: Consumer, count: int) -> list[BusMessage]:
    got: list[BusMessage] = []
    async with asyncio.timeout(30):
        while len(got) < count:
            got += await consumer.fetch(timeout=0.5)
    return got


async def test_a_failed_publish_does_not_hold_back_readers(
    bus: KafkaBus, config: KafkaConfig
) -> None:
    # The failed transaction wrote "first" before the big record was refused. Until it is
    # aborted, read_committed readers of that partition stop in front of it.
    first = rec(SUPPRESSIONS.name, "a@x.test", b"first")
    big = rec(SUPPRESSIONS.name, "big@x.test", os.urandom(2 * MiB))
    with pytest.raises(RecordTooLarge):
        await bus.publish([first, big], timeout=30)

    other = KafkaBus(config, instance="other")
    await other.start()
    try:
        await other.publish([rec(SUPPRESSIONS.name, "a@x.test", b"second")], timeout=30)
    finally:
        await other.close()

    expected = {b"a@x.test": b"second"}
    for _ in range(100):  # 20 s at most, well under the 60 s transaction timeout
        table = await bus.read_table(SUPPRESSIONS.name)
        if table == expected:
            break
        await asyncio.sleep(0.2)
    assert table == expected


async def test_a_restarted_member_fences_the_zombie_transaction(
    bus: KafkaBus, config: KafkaConfig
) -> None:
    await bus.publish([rec(EVENTS.name, "m1", b"in")])
    zombie = bus.consumer("zombie", [EVENTS.name])
    await zombie.start()
    try:
        (message,) = await _fetch(zombie, 1)
        with pytest.raises(TransactionAborted):
            async with zombie.transaction() as txn:
                await txn.publish(rec(SUPPRESSIONS.name, "late@x.test", b"zombie"))
                txn.commit_offsets({message.tp: message.offset + 1})
                # The replacement process starts: its producer has the same transactional id
                # (<prefix><client_id>.<group>.<instance>) and takes over.
                successor = await open_producer(
                    config, f"{config.topic_prefix}{config.client_id}.zombie.specific"
                )
                await discard_producer(successor, 5.0)
        assert await zombie.committed(message.tp) == 0
    finally:
        await zombie.stop()
    assert await bus.read_table(SUPPRESSIONS.name) == {}
