"""The transaction a Kafka consumer-group member hands to its stage.

Owns collecting a transaction's outputs (sent through the member's transactional producer)
and the input offsets to commit with them; ``kafka_consumer`` decides when to commit or
abort. Also holds what the member and the group-less readers share: the failures a Kafka
call can raise, the consumer settings, and turning aiokafka records into ``BusMessage``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiokafka import errors as kafka_errors

from shared.bus.base import BusMessage, TopicPartition, checked_size
from shared.bus.kafka_common import (
    MAX_FETCH_BYTES,
    MAX_PARTITION_FETCH_BYTES,
    WireNames,
    client_kwargs,
    map_error,
)
from shared.config import KafkaConfig
from shared.wire.topics import OutRecord

KAFKA_FAILURES = (
    kafka_errors.KafkaError,
    kafka_errors.IllegalOperation,
    AssertionError,  # aiokafka's transaction state machine out of step
    OSError,
    TimeoutError,
)


def to_message(names: WireNames, record: Any) -> BusMessage:
    """A BusMessage (logical topic, seconds) for an aiokafka ConsumerRecord."""
    return BusMessage(
        topic=names.logical(record.topic),
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        timestamp=record.timestamp / 1000.0,
    )


def consumer_kwargs(config: KafkaConfig) -> dict[str, Any]:
    """Settings every bus consumer uses (grouped or not)."""
    return {
        **client_kwargs(config),
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
        "max_partition_fetch_bytes": MAX_PARTITION_FETCH_BYTES,
        "fetch_max_bytes": MAX_FETCH_BYTES,
    }


class KafkaTransaction:
    """An open transaction of a :class:`KafkaConsumer`."""

    def __init__(self, producer: Any, names: WireNames) -> None:
        self._producer = producer
        self._names = names
        self._sent: list[asyncio.Future[Any]] = []
        self.offsets: dict[TopicPartition, int] = {}

    async def publish(self, record: OutRecord) -> None:
        """Add an output; visible only if the transaction commits."""
        checked_size([record])
        try:
            wire = self._names.wire(record.topic)
            self._sent.append(await self._producer.send(wire, value=record.value, key=record.key))
        except KAFKA_FAILURES as exc:
            raise map_error(exc, f"publish to {record.topic}") from exc

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Set the next offset to read per partition, committed with the outputs."""
        self.offsets.update(offsets)

    def any_failed(self) -> bool:
        """Whether the broker rejected an output already (the producer needs replacing)."""
        return any(f.done() and not f.cancelled() and f.exception() for f in self._sent)

    async def wait_sent(self) -> None:
        """Wait until every output is acknowledged; raises the first failure."""
        for result in await asyncio.gather(*self._sent, return_exceptions=True):
            if isinstance(result, BaseException):
                raise map_error(result, "publish")
