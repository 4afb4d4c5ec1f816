"""The bus contract: what every stage may ask of Kafka or the embedded queue.

Both adapters (``shared.bus.kafka`` and ``shared.bus.embedded``) implement these
protocols and pass the same contract suite (``tests/shared/bus/test_contract.py``).

Semantics every adapter guarantees:

- ``Bus.publish`` is all-or-nothing and durable when it returns (Kafka: transactional,
  acks=all, idempotent; embedded: one committed, fsynced SQLite transaction).
- A ``Consumer`` belongs to a named group; each partition is read by one consumer of the
  group at a time, in offset order. Nothing is committed implicitly.
- ``Consumer.transaction()`` publishes outputs and commits input offsets atomically. When the
  block raises, the transaction is aborted: no output is visible to a read_committed reader,
  no offset moves, and the consumer is rewound to its committed offsets.
- Keys decide partitions, and order is kept per key.
- Topic names given to the bus are logical (``postline.outbound``); an adapter may add a
  configured prefix on the wire.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from shared.errors import RecordTooLarge
from shared.wire.topics import MAX_RECORD_BYTES, OutRecord

__all__ = ["Bus", "BusMessage", "Consumer", "OutRecord", "TopicPartition", "Transaction"]


@dataclass(frozen=True, order=True)
class TopicPartition:
    """One partition of one (logical) topic."""

    topic: str
    partition: int


@dataclass(frozen=True)
class BusMessage:
    """A record read from the bus."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float  # seconds since the epoch, as the bus recorded it

    @property
    def tp(self) -> TopicPartition:
        """The partition this message came from."""
        return TopicPartition(self.topic, self.partition)


class Transaction(Protocol):
    """An open transaction of a consumer (see ``Consumer.transaction``)."""

    async def publish(self, record: OutRecord) -> None:
        """Add an output; it becomes visible only if the transaction commits."""

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Set the next offset to read per partition, committed with the outputs."""


class Consumer(Protocol):
    """A member of a consumer group (not safe to share between tasks doing fetches)."""

    @property
    def group(self) -> str:
        """The consumer group name."""

    async def start(self) -> None:
        """Join the group; returns once the consumer can fetch."""

    async def stop(self) -> None:
        """Leave the group. Uncommitted work is redelivered to whoever takes over."""

    async def fetch(self, max_records: int = 500, timeout: float = 1.0) -> list[BusMessage]:
        """Up to ``max_records`` messages from assigned, unpaused partitions, in order per
        partition; waits at most ``timeout`` seconds when nothing is ready."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """Publish outputs and commit offsets atomically (abort on exception)."""

    def on_revoke(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Register a coroutine awaited before this consumer gives up partitions in a
        rebalance, while it still owns them: the place to commit finished work, so the next
        owner does not redo it. Bounded by the transaction timeout; errors are logged."""

    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions this consumer owns now."""

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop fetching from these partitions (positions are kept)."""

    def resume(self, *partitions: TopicPartition) -> None:
        """Fetch from these partitions again."""

    async def seek(self, partition: TopicPartition, offset: int) -> None:
        """Move the fetch position of an assigned partition (does not commit)."""

    async def committed(self, partition: TopicPartition) -> int:
        """The committed next offset of a partition (0 when the group never committed)."""


class Bus(Protocol):
    """A connection to the bus, shared by everything in one process."""

    async def start(self) -> None:
        """Connect; raises ``BusUnavailable`` when the bus cannot be reached."""

    async def close(self) -> None:
        """Flush and disconnect."""

    async def publish(self, records: Sequence[OutRecord], timeout: float | None = None) -> None:
        """Publish records atomically and durably; returns once they are safe.

        Raises ``BusUnavailable`` when the bus does not acknowledge within ``timeout``
        seconds (then none of the records will become visible), ``RecordTooLarge``
        when a record exceeds the limit.
        """

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        """A new (not yet started) member of ``group`` reading ``topics``."""

    def follow(self, topic: str, from_beginning: bool = True) -> AsyncIterator[BusMessage]:
        """Read every partition of a topic without a group (committed records only),
        then keep following it; used to keep compacted tables up to date."""

    async def read_table(self, topic: str) -> dict[bytes, bytes]:
        """The current state of a compacted topic: last value per key, tombstones removed."""

    def read_to_end(self, topic: str, since: float = 0.0) -> AsyncIterator[BusMessage]:
        """Every committed record of ``topic`` as of the call (its end then), in offset order
        per partition; then the iteration ends. With ``since`` (epoch seconds), each partition
        starts at its first record whose bus timestamp is at or after it (Kafka's offsets for
        times): a time range without reading the older part. For logs read by people's
        tools (the dead letters, a webhook replay), not for stages."""

    async def partition_of(self, topic: str, key: bytes) -> int:
        """The partition of ``topic`` a record keyed ``key`` is published to (the deliverer
        looks for one domain's records in its retry tiers there)."""

    async def read_at(self, partition: TopicPartition, offset: int) -> BusMessage | None:
        """The committed record at ``offset`` of ``partition``, or ``None`` when there is
        none there (removed by retention or compaction, not written yet). For people's tools
        that know where a record is (``postline queue show --body``), not for stages."""

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        """Make sure the topics exist (embedded: no-op; Kafka: create missing ones)."""


def checked_size(records: Sequence[OutRecord]) -> int:
    """The bytes of ``records``; ``RecordTooLarge`` for one past ``MAX_RECORD_BYTES`` (the
    largest record any topic accepts, on either bus)."""
    for record in records:
        if (size := record_size(record)) > MAX_RECORD_BYTES:
            raise RecordTooLarge(
                f"{record.topic}: record of {size} bytes exceeds {MAX_RECORD_BYTES}"
            )
    return sum(record_size(r) for r in records)


def record_size(record: OutRecord) -> int:
    """The bytes of ``record``'s key and value, what the size limits count."""
    return len(record.key or b"") + len(record.value or b"")
