"""Finding records on Kafka: one by its offset (``Bus.read_at``), the partition of a key
(``Bus.partition_of``).

Owns :func:`read_at`: a group-less read_committed consumer assigned the one partition,
positioned at the offset, reading until it meets that offset or passes it. Kafka may have
no record there: retention or compaction removed it, it was a transaction marker or part of
an aborted transaction (read_committed skips both), or nothing was written there yet; then
the answer is ``None``. For people's tools that know where a record is (``postline queue
show --body``), not for stages. Does not read more than the one record's fetch.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer
from aiokafka import errors as kafka_errors
from aiokafka.partitioner import DefaultPartitioner

from shared.bus.base import BusMessage, TopicPartition
from shared.bus.kafka_common import WireNames, map_error
from shared.bus.kafka_transaction import consumer_kwargs, to_message
from shared.config import KafkaConfig
from shared.errors import BusUnavailable

_FAILURES = (kafka_errors.KafkaError, OSError, TimeoutError)


async def read_at(
    config: KafkaConfig, names: WireNames, partition: TopicPartition, offset: int
) -> BusMessage | None:
    """The committed record at ``offset`` of ``partition``, or ``None`` (see the module
    docstring); ``BusUnavailable`` when the cluster does not answer."""
    wire = names.to_kafka(partition)
    consumer = AIOKafkaConsumer(**consumer_kwargs(config))
    try:
        async with asyncio.timeout(config.request_timeout):
            await consumer.start()
            consumer.assign([wire])
            start, end = await _bounds(consumer, wire)
            if not start <= offset < end:
                return None
            consumer.seek(wire, offset)
            while await consumer.position(wire) < end:
                records = (await consumer.getmany(wire, timeout_ms=500, max_records=1)).get(
                    wire, []
                )
                for record in records:
                    if record.offset == offset:
                        return to_message(names, record)
                    if record.offset > offset:
                        return None
        return None
    except _FAILURES as exc:
        raise map_error(exc, f"read {partition.topic}[{partition.partition}]@{offset}") from exc
    finally:
        await consumer.stop()


async def _bounds(consumer: AIOKafkaConsumer, wire: object) -> tuple[int, int]:
    """The partition's first offset still kept and its last stable offset."""
    first = await consumer.beginning_offsets([wire])
    last = await consumer.end_offsets([wire])  # read_committed: the last stable offset
    return int(first[wire]), int(last[wire])


async def partition_of(config: KafkaConfig, names: WireNames, topic: str, key: bytes) -> int:
    """The partition of ``topic`` the bus's producers send a record keyed ``key`` to: the
    default partitioner's (murmur2 of the key over the topic's partitions, as Kafka's Java
    client does), which every producer of the bus uses."""
    # Subscribed without a group, a consumer is assigned every partition of the topic.
    consumer = AIOKafkaConsumer(names.wire(topic), **consumer_kwargs(config))
    try:
        async with asyncio.timeout(config.request_timeout):
            await consumer.start()
            found = {tp.partition for tp in consumer.assignment()}
    except _FAILURES as exc:
        raise map_error(exc, f"partitions of {topic}") from exc
    finally:
        await consumer.stop()
    if not found:
        raise BusUnavailable(f"topic {topic} has no partitions (does it exist?)")
    return int(DefaultPartitioner()(key, sorted(found), sorted(found)))
