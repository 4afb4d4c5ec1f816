"""A real bus with a switch that makes it fail, for fault-injection tests.

:class:`FaultyBus` wraps a working adapter (embedded or Kafka) and, while ``failing`` is set,
raises ``BusUnavailable`` from every call a stage's loops make (fetch, transaction, seek,
publish, start), the way a broker outage surfaces through the adapters. Clearing it lets the
same consumers go on: nothing else about the bus is faked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from shared.bus.base import Bus, BusMessage, Consumer, TopicPartition, Transaction
from shared.errors import BusUnavailable
from shared.wire.topics import OutRecord


class Switch:
    """Whether the bus fails now, and how many calls it refused."""

    def __init__(self) -> None:
        self.failing = False
        self.refused = 0
        self._once: dict[str, int] = {}  # call kind -> how many of its next calls fail

    def fail_next(self, what: str, times: int = 1) -> None:
        """Fail only the next ``times`` calls of kind ``what`` ("fetch", "commit", "seek", ...),
        e.g. a commit lost to a broker blip while everything around it works."""
        self._once[what] = self._once.get(what, 0) + times

    def check(self, what: str) -> None:
        """Raise ``BusUnavailable`` while failing, or for a call armed by :meth:`fail_next`."""
        armed = self._once.get(what, 0)
        if armed:
            self._once[what] = armed - 1
        if self.failing or armed:
            self.refused += 1
            raise BusUnavailable(f"injected fault: {what}")


class FaultyConsumer:
    """A consumer whose calls fail while the switch is on."""

    def __init__(self, inner: Consumer, switch: Switch) -> None:
        self._inner = inner
        self._switch = switch

    @property
    def group(self) -> str:
        return self._inner.group

    async def start(self) -> None:
        self._switch.check("start")
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()

    async def fetch(self, max_records: int = 500, timeout: float = 1.0) -> list[BusMessage]:
        self._switch.check("fetch")
        return await self._inner.fetch(max_records, timeout)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        self._switch.check("transaction")
        async with self._inner.transaction() as txn:
            yield txn
            self._switch.check("commit")  # fails the commit: the transaction aborts

    def on_revoke(self, hook: Callable[[], Awaitable[None]]) -> None:
        self._inner.on_revoke(hook)

    def assignment(self) -> frozenset[TopicPartition]:
        return self._inner.assignment()

    def pause(self, *partitions: TopicPartition) -> None:
        self._inner.pause(*partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._inner.resume(*partitions)

    async def seek(self, partition: TopicPartition, offset: int) -> None:
        self._switch.check("seek")
        await self._inner.seek(partition, offset)

    async def committed(self, partition: TopicPartition) -> int:
        self._switch.check("committed")
        return await self._inner.committed(partition)


class FaultyBus:
    """A bus whose consumers and publishes fail while ``switch.failing`` is set."""

    def __init__(self, inner: Bus) -> None:
        self.inner = inner
        self.switch = Switch()

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def publish(self, records: Sequence[OutRecord], timeout: float | None = None) -> None:
        self.switch.check("publish")
        await self.inner.publish(records, timeout)

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        return FaultyConsumer(self.inner.consumer(group, topics), self.switch)

    async def follow(self, topic: str, from_beginning: bool = True) -> AsyncIterator[BusMessage]:
        self.switch.check("follow")
        async for message in self.inner.follow(topic, from_beginning):
            self.switch.check("follow")
            yield message

    async def read_table(self, topic: str) -> dict[bytes, bytes]:
        return await self.inner.read_table(topic)

    async def read_to_end(self, topic: str, since: float = 0.0) -> AsyncIterator[BusMessage]:
        async for message in self.inner.read_to_end(topic, since):
            yield message

    async def read_at(self, partition: TopicPartition, offset: int) -> BusMessage | None:
        return await self.inner.read_at(partition, offset)

    async def partition_of(self, topic: str, key: bytes) -> int:
        return await self.inner.partition_of(topic, key)

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        await self.inner.ensure_topics(topics)
