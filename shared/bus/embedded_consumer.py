"""A member of a consumer group on the embedded bus, and its transactions.

Owns a consumer's view: its assigned partitions (given by ``EmbeddedBus``'s rebalance),
its fetch positions, paused partitions, and the transaction that writes outputs and
offsets together. It does not know SQL or threads; it asks the bus.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING

from shared.bus.base import BusMessage, TopicPartition, Transaction, checked_size
from shared.bus.embedded_store import WriteItem
from shared.errors import BusError, TransactionAborted
from shared.wire.topics import OutRecord

if TYPE_CHECKING:
    from shared.bus.embedded import EmbeddedBus

#: Fallback poll for records written by another process (same-process commits wake
#: waiters at once through ``EmbeddedBus.changed_for``).
POLL_INTERVAL = 0.25

#: How long a member's revoke hooks may take before its partitions move anyway.
REVOKE_HOOK_TIMEOUT = 30.0

log = logging.getLogger(__name__)


async def wait_changed(changed: asyncio.Event, seconds: float) -> None:
    """Wait until ``changed`` is set or ``seconds`` pass."""
    with suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await changed.wait()


class EmbeddedTransaction:
    """Outputs and offsets collected in memory; written only when the block succeeds."""

    def __init__(self) -> None:
        self.records: list[OutRecord] = []
        self.offsets: dict[TopicPartition, int] = {}

    async def publish(self, record: OutRecord) -> None:
        """Add an output (visible only once the transaction commits)."""
        checked_size([record])
        self.records.append(record)

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Set the next offset per partition, committed with the outputs."""
        self.offsets.update(offsets)


class EmbeddedConsumer:
    """A member of ``group`` reading ``topics`` from an :class:`EmbeddedBus`."""

    def __init__(self, bus: EmbeddedBus, group: str, topics: Sequence[str]) -> None:
        self._bus = bus
        self._group = group
        self.topics = tuple(topics)
        self._topic_set = frozenset(self.topics)  # the key of its wake-up event
        self.partitions: dict[str, int] = {}
        self._assignment: frozenset[TopicPartition] = frozenset()
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._started = False
        self._turn = 0
        self._revoke_hooks: list[Callable[[], Awaitable[None]]] = []

    @property
    def group(self) -> str:
        """The consumer group name."""
        return self._group

    async def start(self) -> None:
        """Join the group (creating the topics); partitions are assigned on return."""
        if not self._started:
            self.partitions = await self._bus.ensure_partitions(self.topics)
            self._started = True
            await self._bus.join(self)

    async def stop(self) -> None:
        """Leave the group; uncommitted positions are forgotten."""
        if self._started:
            self._started = False
            await self._bus.leave(self)

    def on_revoke(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Await ``hook`` before partitions are given up (see ``Consumer.on_revoke``)."""
        self._revoke_hooks.append(hook)

    async def before_losing(self) -> None:
        """Run the revoke hooks (called by the bus's rebalance while we still own them)."""
        for hook in self._revoke_hooks:
            try:
                async with asyncio.timeout(REVOKE_HOOK_TIMEOUT):
                    await hook()
            except (TimeoutError, BusError) as exc:
                log.warning("group %s: revoke hook failed: %r", self._group, exc)

    def assign(self, tps: frozenset[TopicPartition]) -> None:
        """Set the owned partitions (called by the bus's rebalance)."""
        self._assignment = tps
        self._positions = {tp: p for tp, p in self._positions.items() if tp in tps}
        self._paused &= tps

    async def fetch(
        self,
        max_records: int = 500,
        timeout: float = 1.0,
    ) -> list[BusMessage]:
        """Committed records from assigned, unpaused partitions, in order per partition."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._bus.check_running()
            changed = self._bus.changed_for(self._topic_set)
            await self._load_positions()
            ready = self._ready()
            batch = await self._bus.read_from(ready, max_records) if ready else []
            # Keep only records read from positions that did not move meanwhile (seek,
            # rebalance, abort while the read ran).
            batch = [m for m in batch if self._positions.get(m.tp) == ready[m.tp]]
            if batch:
                for message in batch:
                    self._positions[message.tp] = message.offset + 1
                return batch
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            await wait_changed(changed, min(remaining, POLL_INTERVAL))

    def _ready(self) -> dict[TopicPartition, int]:
        # Start at a different partition each time so a backlog in one partition does not
        # starve the others (a fetch fills up from the first partitions it reads).
        ready = sorted((tp, p) for tp, p in self._positions.items() if tp not in self._paused)
        if not ready:
            return {}
        self._turn = (self._turn + 1) % len(ready)
        return dict(ready[self._turn :] + ready[: self._turn])

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """Outputs plus offsets in one SQLite transaction; on exception nothing is written
        and the positions go back to the committed offsets."""
        txn = EmbeddedTransaction()
        try:
            yield txn
            foreign = sorted(set(txn.offsets) - self._assignment)
            if foreign:
                raise TransactionAborted(f"group {self._group}: partitions not owned: {foreign}")
            offsets = {(self._group, tp): offset for tp, offset in txn.offsets.items()}
            await self._bus.commit(WriteItem(records=tuple(txn.records), offsets=offsets))
        except BaseException:
            self._positions.clear()  # reloaded from the committed offsets at the next fetch
            raise

    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions this consumer owns now."""
        return self._assignment

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop fetching from these partitions (positions are kept)."""
        self._paused.update(tp for tp in partitions if tp in self._assignment)

    def resume(self, *partitions: TopicPartition) -> None:
        """Fetch from these partitions again."""
        self._paused.difference_update(partitions)

    async def seek(self, partition: TopicPartition, offset: int) -> None:
        """Move the fetch position of an assigned partition (not committed)."""
        if partition not in self._assignment:
            raise BusError(f"group {self._group}: cannot seek {partition}: not assigned")
        self._positions[partition] = offset

    async def committed(self, partition: TopicPartition) -> int:
        """The committed next offset of a partition (0 when never committed)."""
        return (await self._bus.committed(self._group, [partition]))[partition]

    async def _load_positions(self) -> None:
        missing = self._assignment - self._positions.keys()
        if not missing:
            return
        # The barrier makes a transaction its previous owner queued before the rebalance
        # land first, so we start after what it committed.
        await self._bus.barrier()
        committed = await self._bus.committed(self._group, missing)
        for tp, offset in committed.items():
            if tp in self._assignment and tp not in self._positions:
                self._positions[tp] = offset
