"""The Kafka adapter of the bus (aiokafka): the production path.

Owns :class:`KafkaBus`, the ``Bus`` protocol of ``shared.bus.base`` on Kafka: publishing
a single record with an idempotent producer (``kafka_single``: one record is atomic on its
own) and several through one group-committing transactional producer (``kafka_publisher``),
group members with their own transactional producers (``kafka_consumer``), group-less
readers for compacted tables (``follow``, ``read_table``) and creating missing topics
(``kafka_admin``).

Logical topic names (``postline.outbound``) get ``kafka.topic_prefix`` on the wire, and so do
consumer group ids and transactional ids: a prefix is a namespace, so two deployments (or
two test runs) sharing a cluster never see, join or fence each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka import errors as kafka_errors

from shared.bus.base import BusMessage, Consumer, TopicPartition
from shared.bus.kafka_admin import create_topics, topic_for
from shared.bus.kafka_common import WireNames, client_kwargs, map_error
from shared.bus.kafka_consumer import KafkaConsumer
from shared.bus.kafka_lookup import partition_of, read_at
from shared.bus.kafka_publisher import GroupCommitPublisher
from shared.bus.kafka_reset import refresh_metadata_on_failed_reset
from shared.bus.kafka_single import SingleRecordPublisher
from shared.bus.kafka_transaction import consumer_kwargs, to_message
from shared.config import KafkaConfig
from shared.errors import BusUnavailable
from shared.wire.topics import OutRecord

__all__ = ["KafkaBus"]

#: How long read_table waits for records past the last stable offset to become readable.
IN_DOUBT_GRACE = 2.0

_READ_FAILURES = (kafka_errors.KafkaError, OSError, TimeoutError)


class KafkaBus:
    """The bus on a Kafka cluster (see the module doc and ``shared.bus.base.Bus``)."""

    def __init__(
        self,
        config: KafkaConfig,
        instance: str,
        replication_factor: int | None = None,
        *,
        static_members: bool = False,
    ) -> None:
        """``instance`` is this process's stable id (pod name): it names the transactional
        ids, so a restarted process fences its predecessor. ``replication_factor`` is used
        when ``ensure_topics`` has to create a topic (``None``: the cluster's
        ``default.replication.factor``). ``static_members``: consumers join their groups
        with ``group.instance.id`` = ``instance`` (static membership, KIP-345)."""
        self.config = config
        self.instance = instance
        self.replication_factor = replication_factor
        self.static_members = static_members
        self._names = WireNames(config.topic_prefix)
        self._publisher = GroupCommitPublisher(
            config, self._names, self._transactional_id(f"{instance}.pub")
        )
        self._single = SingleRecordPublisher(config, self._names)
        self._members: dict[str, set[int]] = {}  # group -> slots of live members

    async def start(self) -> None:
        """Connect; raises ``BusUnavailable`` when Kafka is unreachable within the timeout."""
        await self._publisher.start()
        try:
            await self._single.start()
        except BaseException:
            await self._publisher.close()
            raise

    async def close(self) -> None:
        """Publish what is queued, then disconnect."""
        await asyncio.gather(self._publisher.close(), self._single.close())

    async def publish(
        self,
        records: Sequence[OutRecord],
        timeout: float | None = None,
    ) -> None:
        """Publish atomically and durably: one record with an idempotent produce, several in
        a transaction shared with concurrent callers."""
        if len(records) == 1:
            await self._single.publish(records[0], timeout)
        else:
            await self._publisher.publish(records, timeout)

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        """A new (not started) member of ``group`` with its own transactional producer."""
        slots = self._members.setdefault(group, set())
        slot = next(n for n in range(len(slots) + 1) if n not in slots)
        slots.add(slot)
        suffix = f".{slot}" if slot else ""
        return KafkaConsumer(
            self.config,
            self._names,
            group,
            topics,
            self._transactional_id(f"{group}.{self.instance}{suffix}"),
            # Unique within the group, like the transactional id: two live members with one
            # instance id would fence each other in turn.
            group_instance_id=f"{self.instance}{suffix}" if self.static_members else None,
            on_stop=lambda: slots.discard(slot),
        )

    async def follow(self, topic: str, from_beginning: bool = True) -> AsyncIterator[BusMessage]:
        """Every committed record of every partition, then new ones as they come."""
        consumer = await self._reader(topic, "earliest" if from_beginning else "latest")
        try:
            while True:
                try:
                    batches = await consumer.getmany(timeout_ms=1000)
                except _READ_FAILURES as exc:
                    raise map_error(exc, f"follow {topic}") from exc
                for tp in sorted(batches):
                    for record in batches[tp]:
                        yield to_message(self._names, record)
        finally:
            await consumer.stop()

    async def read_table(self, topic: str) -> dict[bytes, bytes]:
        """Last value per key of a compacted topic as of now, tombstones removed.

        "Now" is the high watermark when the call starts. The broker's last stable offset
        trails a commit by the few milliseconds its transaction markers take, so a value
        published just before would be missed if reading stopped there; records beyond it
        get ``IN_DOUBT_GRACE`` seconds to become readable (a transaction still open after
        that is not part of the current state).
        """
        table: dict[bytes, bytes] = {}
        async for record in self._to_end(topic, f"read table {topic}"):
            _apply(table, record)
        return table

    async def read_to_end(self, topic: str, since: float = 0.0) -> AsyncIterator[BusMessage]:
        """Every committed record of ``topic`` as of the call (as ``read_table`` reads it),
        from ``since`` (see ``Bus``), in offset order per partition; then the iteration ends."""
        async for record in self._to_end(topic, f"read {topic}", since):
            yield to_message(self._names, record)

    async def _to_end(self, topic: str, doing: str, since: float = 0.0) -> AsyncIterator[Any]:
        """The records of ``topic`` up to its high watermark at the call (see read_table),
        each partition from its first record at or after ``since`` when given."""
        consumer = await self._reader(topic, "earliest")
        try:
            tps = list(consumer.assignment())
            stable = await consumer.end_offsets(tps)  # read_committed: last stable offsets
            high = await self._high_watermarks(tps)
            loop = asyncio.get_running_loop()
            give_up: float | None = None
            pending = {tp for tp in tps if high[tp] > 0}
            if since and pending:
                # ListOffsets by timestamp (KIP-79): None where no record is that recent.
                found = await consumer.offsets_for_times({tp: int(since * 1000) for tp in pending})
                for tp in list(pending):
                    start = found.get(tp)
                    if start is None:
                        pending.discard(tp)
                    else:
                        consumer.seek(tp, start.offset)
            while pending and (give_up is None or loop.time() < give_up):
                batches = await consumer.getmany(*pending, timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        yield record
                positions = {tp: await consumer.position(tp) for tp in pending}
                pending = {tp for tp in pending if positions[tp] < high[tp]}
                if give_up is None and all(positions[tp] >= stable[tp] for tp in pending):
                    give_up = loop.time() + IN_DOUBT_GRACE
        except _READ_FAILURES as exc:
            raise map_error(exc, doing) from exc
        finally:
            await consumer.stop()

    async def _high_watermarks(self, tps: list[Any]) -> dict[Any, int]:
        # A read_uncommitted ListOffsets: where the log ends, open transactions included.
        probe = AIOKafkaConsumer(**client_kwargs(self.config), isolation_level="read_uncommitted")
        await probe.start()
        try:
            return dict(await probe.end_offsets(tps))
        finally:
            await probe.stop()

    async def read_at(self, partition: TopicPartition, offset: int) -> BusMessage | None:
        """The committed record at ``offset`` of ``partition`` (``kafka_lookup``)."""
        return await read_at(self.config, self._names, partition, offset)

    async def partition_of(self, topic: str, key: bytes) -> int:
        """The partition of ``topic`` a record keyed ``key`` goes to (``kafka_lookup``)."""
        return await partition_of(self.config, self._names, topic, key)

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        """Create the missing topics as ``shared.wire.topics`` declares them."""
        declared = [topic_for(name) for name in dict.fromkeys(topics)]
        await create_topics(self.config, declared, self.replication_factor, update_existing=False)

    async def _reader(self, topic: str, reset: str) -> Any:
        """A started group-less read_committed consumer owning every partition of ``topic``."""
        consumer = AIOKafkaConsumer(
            self._names.wire(topic), **consumer_kwargs(self.config), auto_offset_reset=reset
        )
        try:
            async with asyncio.timeout(self.config.request_timeout):
                await consumer.start()
        except _READ_FAILURES as exc:
            await consumer.stop()
            raise map_error(exc, f"read {topic}") from exc
        refresh_metadata_on_failed_reset(consumer)
        if not consumer.assignment():
            await consumer.stop()
            raise BusUnavailable(f"topic {topic} has no partitions (does it exist?)")
        return consumer

    def _transactional_id(self, suffix: str) -> str:
        return f"{self.config.topic_prefix}{self.config.client_id}.{suffix}"


def _apply(table: dict[bytes, bytes], record: Any) -> None:
    if record.key is None:
        return
    if record.value is None:
        table.pop(record.key, None)
    else:
        table[record.key] = record.value
