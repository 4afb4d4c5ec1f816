"""The embedded bus: the ``Bus`` contract on one SQLite file, for one process.

Owns the process-side semantics: lazily created topics, consumer groups (partitions split
among the group's members in the order they started, reassigned when one stops), fetch
positions, transactions (outputs are kept in memory and written together with the offsets
in one SQLite transaction, so an abort writes nothing), waiting for new records, ``follow``,
``read_table`` and periodic retention. The SQL is in ``embedded_store``; the threads and the
group commit in ``embedded_threads``. SQLite never runs on the event loop.

Consumer groups live in this object's memory, so two processes consuming one file would each
read every partition. The process that runs stages therefore opens its bus with
``lock=True`` (``shared.bus.factory.open_bus`` does, for the runtime) and holds
``embedded_lock``'s exclusive lock while it is open: a second such process fails at start
with a message naming the holder. The CLI's ``events``, ``message`` and ``suppress``
commands open without the lock (they publish, ``follow`` and ``read_table``, never join a
group) and so keep working beside a running ``postline run``.

Whatever the owner lock, a group's first member in this process takes the group's own lock
(``OwnerLock.acquire_group``), held until the group's last member here leaves: the stage
processes of a ``postline run`` spread over several processes share the file, one process
per group, and a process joining a group another one holds is refused. Records written by
another process wake this one's waiting fetches through ``watch_others``: a poll of SQLite's
``data_version`` every :data:`WATCH_INTERVAL`, and when it changed, of each topic's end
offsets, so only the readers of topics that grew wake (a commit in this process wakes the
readers of what it wrote at once).

Not done here: several processes sharing one group, and anything Kafka-only (topic
prefixes: logical names are used as they are).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from contextlib import suppress
from functools import partial
from typing import TypeVar

from shared.bus.base import BusMessage, Consumer, TopicPartition, checked_size
from shared.bus.embedded_consumer import (
    POLL_INTERVAL,
    EmbeddedConsumer,
    wait_changed,
)
from shared.bus.embedded_lock import OwnerLock
from shared.bus.embedded_store import StoreReader, StoreWriter, WriteItem, key_partition
from shared.bus.embedded_threads import GroupCommitter, SqlThread
from shared.config import EmbeddedConfig
from shared.errors import BusError, BusUnavailable
from shared.wire.topics import MAX_RECORD_BYTES, OutRecord, all_topics

__all__ = ["EmbeddedBus"]

#: A fetch stops adding records past this many bytes (it always returns at least one).
MAX_FETCH_BYTES = MAX_RECORD_BYTES
READER_THREADS = 2
#: How often a bus with ``watch_others`` looks for commits of other processes: the longest
#: a record another process wrote waits before a fetch here sees it, when nothing is queued.
WATCH_INTERVAL = 0.02
T = TypeVar("T")
_COMPACTED = frozenset(t.name for t in all_topics() if t.compact)


class EmbeddedBus:
    """The bus on a single SQLite file in WAL mode (``[embedded]`` config)."""

    def __init__(
        self, config: EmbeddedConfig, *, lock: bool = False, watch_others: bool = False
    ) -> None:
        """``lock``: take the owner lock at start (a process that runs stages).
        ``watch_others``: wake waiting fetches soon after another process commits (a stage
        process sharing the file with others)."""
        self._config = config
        self._take_lock = lock
        self._lock: OwnerLock | None = None
        self._group_locks: dict[str, OwnerLock] = {}
        self._watch_others = watch_others
        self._watcher = SqlThread("bus-watch", lambda: StoreReader(path))
        self._watch_task: asyncio.Task[None] | None = None
        path = config.path
        self._writer = SqlThread(
            "bus-writer", lambda: StoreWriter(path, config.partitions, config.max_size)
        )
        self._readers = [
            SqlThread(f"bus-reader-{i}", lambda: StoreReader(path)) for i in range(READER_THREADS)
        ]
        self._next_reader = itertools.cycle(self._readers)
        self._committer = GroupCommitter(self._writer, self._notify)
        # Waiters by the topics they read: a commit wakes only those reading what it wrote
        # (an offsets-only commit wakes nobody); see changed_for.
        self._changed: dict[frozenset[str], asyncio.Event] = {}
        self._groups: dict[str, list[EmbeddedConsumer]] = {}
        self._rebalancing = asyncio.Lock()  # one group change at a time (hooks await)
        self._retention_task: asyncio.Task[None] | None = None
        self._running = False

    async def start(self) -> None:
        """Open (and create) the file; ``BusUnavailable`` when it cannot be opened, or (with
        ``lock``) when another process holds the owner lock."""
        if self._running:
            return
        try:
            self._config.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BusUnavailable(f"embedded bus: cannot create {self._config.path}") from exc
        if self._take_lock:
            self._lock = OwnerLock.acquire(self._config.path)
        try:
            await self._writer.run(lambda store: None)  # opens the file, creates the schema
        except BusUnavailable:
            await self._writer.close()
            self._release()
            raise
        self._committer.start()
        self._retention_task = asyncio.create_task(self._retention(), name="bus-retention")
        if self._watch_others:
            self._watch_task = asyncio.create_task(self._watch(), name="bus-watch")
        self._running = True

    async def close(self) -> None:
        """Commit what is queued, stop the threads; waiting fetches end."""
        if not self._running:
            return
        self._running = False
        for task in (self._retention_task, self._watch_task):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        await self._committer.close()
        self._notify()
        await self._writer.close()
        for reader in (*self._readers, self._watcher):
            await reader.close()
        self._release()

    async def publish(
        self,
        records: Sequence[OutRecord],
        timeout: float | None = None,
    ) -> None:
        """Append ``records`` in one fsynced transaction (shared with concurrent callers)."""
        checked_size(records)
        self.check_running()
        if records:
            await self._committer.submit(WriteItem(records=tuple(records)), timeout)

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        """A new member of ``group``; partitions are assigned when it starts."""
        return EmbeddedConsumer(self, group, tuple(topics))

    async def follow(self, topic: str, from_beginning: bool = True) -> AsyncIterator[BusMessage]:
        """Every record of ``topic`` (all partitions), then new ones as they commit; ends
        when the bus closes."""
        count = (await self.ensure_partitions([topic]))[topic]
        start: Mapping[int, int] = {}
        if not from_beginning:
            start = await self._read(lambda store: store.end_offsets(topic))
        positions = {TopicPartition(topic, p): start.get(p, 0) for p in range(count)}
        waiting_on = frozenset([topic])
        while self._running:
            changed = self.changed_for(waiting_on)
            try:
                batch = await self.read_from(positions, 500)
            except BusUnavailable:
                if not self._running:
                    return  # closed while reading
                raise
            for message in batch:
                positions[message.tp] = message.offset + 1
                yield message
            if not batch:
                await wait_changed(changed, POLL_INTERVAL)

    async def read_table(self, topic: str) -> dict[bytes, bytes]:
        """Last value per key of a (compacted) topic, tombstones removed."""
        self.check_running()
        return await self._read(lambda store: store.table(topic))

    async def read_to_end(self, topic: str, since: float = 0.0) -> AsyncIterator[BusMessage]:
        """Every committed record of ``topic`` as of the call (from ``since``: see ``Bus``),
        partition after partition in offset order; then the iteration ends."""
        self.check_running()
        count = (await self.ensure_partitions([topic]))[topic]
        ends = await self._read(lambda store: store.end_offsets(topic))
        starts = await self._read(lambda store: store.offsets_since(topic, since)) if since else {}
        positions = {
            TopicPartition(topic, p): starts.get(p, 0 if not since else ends.get(p, 0))
            for p in range(count)
            if ends.get(p, 0) > 0
        }
        positions = {tp: at for tp, at in positions.items() if at < ends[tp.partition]}
        while positions:
            batch = await self.read_from(positions, 500)
            if not batch:
                return  # what is left below the ends was removed by retention meanwhile
            for message in batch:
                if message.offset < ends[message.partition]:
                    yield message
                positions[message.tp] = message.offset + 1
            positions = {tp: at for tp, at in positions.items() if at < ends[tp.partition]}

    async def partition_of(self, topic: str, key: bytes) -> int:
        """The partition of ``topic`` a record keyed ``key`` goes to."""
        count = (await self.ensure_partitions([topic]))[topic]
        return key_partition(key, count)

    async def read_at(self, partition: TopicPartition, offset: int) -> BusMessage | None:
        """The committed record at ``offset`` of ``partition``, or ``None``."""
        found = await self.read_from({partition: offset}, 1)
        return found[0] if found and found[0].offset == offset else None

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        """Create the topics now (they are otherwise created on first use)."""
        await self.ensure_partitions(topics)

    # -- used by consumers (same module) ------------------------------------------------

    async def ensure_partitions(self, topics: Iterable[str]) -> dict[str, int]:
        """The partition count of each topic, creating missing topics."""
        self.check_running()
        names = list(topics)
        return await self._writer.run(lambda store: store.ensure_topics(names))

    async def read_from(
        self, positions: Mapping[TopicPartition, int], max_records: int
    ) -> list[BusMessage]:
        """Committed records at or after each position."""
        order = list(positions.items())
        return await self._read(lambda store: store.read(order, max_records, MAX_FETCH_BYTES))

    async def committed(
        self, group: str, tps: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Committed next offsets of ``group``."""
        wanted = list(tps)
        return await self._read(lambda store: store.committed(group, wanted))

    async def commit(self, item: WriteItem) -> None:
        """Write a transaction's outputs and offsets atomically."""
        self.check_running()
        await self._committer.submit(item)

    async def barrier(self) -> None:
        """Return once every write queued before this call is committed."""
        self.check_running()
        await self._committer.submit(WriteItem())

    def changed_for(self, topics: frozenset[str]) -> asyncio.Event:
        """Set at the next commit that writes to one of ``topics`` (capture it before
        reading, then wait on it)."""
        event = self._changed.get(topics)
        if event is None:
            event = self._changed[topics] = asyncio.Event()
        return event

    async def join(self, member: EmbeddedConsumer) -> None:
        """Add a started member to its group and rebalance the group; ``BusUnavailable``
        when another process holds the group."""
        if member.group not in self._group_locks:
            self._group_locks[member.group] = OwnerLock.acquire_group(
                self._config.path, member.group
            )
        self._groups.setdefault(member.group, []).append(member)
        await self._rebalance(member.group)

    async def leave(self, member: EmbeddedConsumer) -> None:
        """Remove a member; its partitions go to the others."""
        members = self._groups.get(member.group, [])
        if member in members:
            members.remove(member)
        member.assign(frozenset())
        await self._rebalance(member.group)
        if not members and (held := self._group_locks.pop(member.group, None)) is not None:
            held.release()

    def check_running(self) -> None:
        """``BusUnavailable`` unless started and not closed."""
        if not self._running:
            raise BusUnavailable("embedded bus is not running (not started, or closed)")

    # -- internals ----------------------------------------------------------------------

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        for held in self._group_locks.values():
            held.release()
        self._group_locks.clear()

    async def _rebalance(self, group: str) -> None:
        async with self._rebalancing:
            await self._assign(group)

    async def _assign(self, group: str) -> None:
        # Static assignment: partition i of a topic goes to the (i mod n)-th member (in
        # start order) of those reading that topic.
        members = self._groups.get(group, [])
        owned: dict[EmbeddedConsumer, set[TopicPartition]] = {m: set() for m in members}
        topics = {t for m in members for t in m.topics}
        for topic in sorted(topics):
            readers = [m for m in members if topic in m.topics]
            for part in range(readers[0].partitions[topic]):
                owned[readers[part % len(readers)]].add(TopicPartition(topic, part))
        for member, tps in owned.items():
            if member.assignment() - tps:
                await member.before_losing()  # commit finished work while still the owner
        for member, tps in owned.items():
            member.assign(frozenset(tps))

    async def _read(self, fn: Callable[[StoreReader], T]) -> T:
        self.check_running()
        return await next(self._next_reader).run(fn)

    def _notify(self, topics: Collection[str] | None = None) -> None:
        """Wake the waiters on any of ``topics`` (``None``: every waiter)."""
        for key in [k for k in self._changed if topics is None or not k.isdisjoint(topics)]:
            self._changed.pop(key).set()

    async def _watch(self) -> None:
        # Wakes only the readers of topics that grew, so this process's own commits (which
        # change data_version too) and other processes' offset commits wake nobody here.
        version: int | None = None
        ends: dict[str, int] | None = None
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                version, now = await self._watcher.run(
                    partial(StoreReader.topic_ends, since_version=version)
                )
            except BusError:
                continue  # the fetches' own poll (POLL_INTERVAL) still finds the records
            if now is None:
                continue
            if ends is not None:
                grown = [topic for topic, end in now.items() if ends.get(topic) != end]
                if grown:
                    self._notify(grown)
            ends = now

    async def _retention(self) -> None:
        retention = float(self._config.retention)
        every = min(max(retention / 4, 1.0), 300.0)
        while True:
            await asyncio.sleep(every)
            # A failed sweep is retried at the next tick; records are only kept longer.
            with suppress(BusError):
                await self._writer.run(partial(_sweep, now=time.time(), retention=retention))


def _sweep(store: StoreWriter, now: float, retention: float) -> None:
    store.sweep(now, retention, _COMPACTED)
