"""A Kafka consumer-group member with its own transactional producer (exactly-once stages).

Owns ``KafkaBus.consumer(...)``: the group member (read_committed, no auto commit, fetch
sizes for the largest mail), committing its transaction (outputs collected by
``kafka_transaction.KafkaTransaction`` + input offsets, together via
``send_offsets_to_transaction``, KIP-98), the rewind to committed offsets after an abort, and
rebalance handling. It does not decide what a stage does with a batch (``shared.runtime.batch``).

Zombie fencing: aiokafka's TxnOffsetCommit carries no group generation (KIP-447), so fencing
rests on the transactional id ``<prefix><client_id>.<group>.<instance>``: a restarted process
with the same instance id fences its predecessor and aborts its open transaction. A second
live member of the same group in one process (tests, or a stage with several workers) gets
``.<n>`` appended so the two never fence each other.

Static membership (KIP-345, ``group_instance_id``): the member joins under the process's
stable instance id. It sends no LeaveGroup when it stops, so a restarted pod that rejoins
within ``kafka.session_timeout`` gets the same partitions back and the other members are
not rebalanced; a member that does not come back loses its partitions at the session
timeout. A restart with the same id also fences the old member (FENCED_INSTANCE_ID).

Rebalances: before partitions are taken away, the listener waits for an open transaction to
finish, so offsets are never committed for partitions another member already reads. The
classic protocol revokes every partition at each rebalance; a partition that comes back to
this member resumes at the position it had (so work in hand stays valid and is committed
once), while a transaction that commits offsets of a partition lost since the work was
fetched is aborted with ``TransactionAborted``: its new owner reads the same records from
the committed offset (without this, a signer still signing when its partitions moved
produced every output twice). Partitions new to this member start at the group's committed
offset (``auto_offset_reset=earliest`` when the group never committed).

Committed offsets: after a commit, Kafka makes the offsets readable only once the
transaction markers are written (OffsetFetch below v7 has no ``require_stable``), so this
member remembers what it committed and never reports or rewinds below that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka import errors as kafka_errors
from aiokafka.structs import OffsetAndMetadata

from shared.bus.base import BusMessage, TopicPartition, Transaction
from shared.bus.kafka_common import WireNames, map_error
from shared.bus.kafka_producer import abort_quietly, discard_producer, open_producer
from shared.bus.kafka_reset import refresh_metadata_on_failed_reset
from shared.bus.kafka_transaction import (
    KAFKA_FAILURES,
    KafkaTransaction,
    consumer_kwargs,
    to_message,
)
from shared.config import KafkaConfig
from shared.errors import BusError, BusUnavailable, RecordTooLarge, TransactionAborted

log = logging.getLogger(__name__)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, member: KafkaConsumer) -> None:
        self._member = member

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._member.before_revoke(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._member.after_assign(assigned)


class KafkaConsumer:
    """A member of a consumer group on Kafka (see the module doc)."""

    def __init__(
        self,
        config: KafkaConfig,
        names: WireNames,
        group: str,
        topics: Sequence[str],
        transactional_id: str,
        *,
        group_instance_id: str | None = None,
        on_stop: Callable[[], None] = lambda: None,
    ) -> None:
        self._config = config
        self._group_instance_id = group_instance_id
        self._names = names
        self._group = group
        self._topics = tuple(topics)
        self._transactional_id = transactional_id
        self._on_stop = on_stop
        self._consumer: Any = None
        self._producer: Any = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._committed: dict[TopicPartition, int] = {}
        self._rebalancing = False
        self._next: dict[Any, int] = {}  # partition -> next offset to hand out (work in hand)
        self._positions: dict[Any, int] = {}  # revoked partition -> position, until reassigned
        self._lost: set[TopicPartition] = set()  # lost since the last transaction ended
        self._revoke_hooks: list[Callable[[], Awaitable[None]]] = []

    @property
    def group(self) -> str:
        """The consumer group name (logical, without the topic prefix)."""
        return self._group

    async def start(self) -> None:
        """Join the group (waits for the first assignment) and open the producer."""
        self._producer = await open_producer(self._config, self._transactional_id)
        session_ms = int(self._config.session_timeout * 1000)
        consumer = AIOKafkaConsumer(
            **consumer_kwargs(self._config),
            group_id=self._names.group(self._group),
            group_instance_id=self._group_instance_id,
            session_timeout_ms=session_ms,
            # Three heartbeats per session, as Kafka's defaults (45s / 3s) allow many more.
            heartbeat_interval_ms=min(3000, session_ms // 3),
            auto_offset_reset="earliest",
        )
        consumer.subscribe([self._names.wire(t) for t in self._topics], listener=_Listener(self))
        try:
            # The first join on a fresh broker can take a few seconds (group coordinator load).
            async with asyncio.timeout(max(self._config.request_timeout, 30.0)):
                await consumer.start()
        except KAFKA_FAILURES as exc:
            await consumer.stop()
            await discard_producer(self._producer, self._config.request_timeout)
            self._producer = None
            raise map_error(exc, f"join group {self._group}") from exc
        refresh_metadata_on_failed_reset(consumer)
        self._consumer = consumer

    async def stop(self) -> None:
        """Leave the group and close the producer; uncommitted work is redelivered."""
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        if consumer is not None:
            await consumer.stop()
        if producer is not None:
            await discard_producer(producer, self._config.request_timeout)
        self._on_stop()

    async def fetch(
        self,
        max_records: int = 500,
        timeout: float = 1.0,
    ) -> list[BusMessage]:
        """Up to ``max_records`` committed records from assigned, unpaused partitions."""
        consumer = self._running()
        try:
            batches = await consumer.getmany(
                timeout_ms=int(timeout * 1000), max_records=max_records
            )
        except KAFKA_FAILURES as exc:
            raise map_error(exc, f"fetch for group {self._group}") from exc
        for tp, records in batches.items():
            if records:
                self._next[tp] = records[-1].offset + 1
        return [to_message(self._names, r) for tp in sorted(batches) for r in batches[tp]]

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """Publish outputs and commit offsets atomically (abort and rewind on exception)."""
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        consumer = self._running()
        await self._idle.wait()  # one transaction at a time per member
        self._idle.clear()
        try:
            if self._producer is None:
                self._producer = await open_producer(self._config, self._transactional_id)
            try:
                await self._producer.begin_transaction()
            except KAFKA_FAILURES as exc:
                await self._replace_producer()
                raise map_error(exc, f"begin transaction for {self._group}") from exc
            txn = KafkaTransaction(self._producer, self._names)
            try:
                yield txn
            except BaseException:
                await self._abort(txn)
                raise
            moved = sorted(tp for tp in txn.offsets if tp in self._lost)
            if moved:
                await self._abort(txn)
                raise TransactionAborted(
                    f"group {self._group}: {', '.join(map(str, moved))} moved to another member "
                    "after this work was fetched; its records are read again by their owner"
                )
            await self._commit(txn, consumer)
        finally:
            self._lost.clear()
            self._idle.set()

    async def _commit(self, txn: KafkaTransaction, consumer: Any) -> None:
        try:
            await txn.wait_sent()
            if txn.offsets:
                offsets = {
                    self._names.to_kafka(tp): OffsetAndMetadata(offset, "")
                    for tp, offset in txn.offsets.items()
                }
                await self._producer.send_offsets_to_transaction(
                    offsets, self._names.group(self._group)
                )
            await self._producer.commit_transaction()
        except (BusError, *KAFKA_FAILURES) as exc:
            await self._abort(txn)
            if isinstance(exc, RecordTooLarge):
                raise
            raise TransactionAborted(f"group {self._group}: commit failed: {exc!r}") from exc
        self._committed.update(txn.offsets)

    async def _abort(self, txn: KafkaTransaction) -> None:
        """Abort the open transaction and rewind every owned partition to its commit."""
        if self._producer is not None:
            aborted = await abort_quietly(self._producer, self._config.request_timeout)
            # A rejected batch leaves the idempotent sequence with a gap: start afresh.
            if not aborted or txn.any_failed():
                await self._replace_producer()
        if self._consumer is not None:
            await self._rewind(sorted(self.assignment()))

    async def _rewind(self, partitions: Sequence[TopicPartition]) -> None:
        """Seek to the committed offsets (the log start where the group never committed)."""
        consumer = self._running()
        try:
            committed = {tp: await self._fetch_committed(tp) for tp in partitions}
            never = [self._names.to_kafka(tp) for tp, offset in committed.items() if offset is None]
            starts = await consumer.beginning_offsets(never) if never else {}
            for tp, offset in committed.items():
                kafka_tp = self._names.to_kafka(tp)
                consumer.seek(kafka_tp, starts[kafka_tp] if offset is None else offset)
                self._next.pop(kafka_tp, None)  # nothing in hand any more
        except (kafka_errors.IllegalStateError, AssertionError):
            log.info("group %s: partitions were revoked during the rewind", self._group)
        except KAFKA_FAILURES as exc:
            raise map_error(exc, f"rewind group {self._group}") from exc

    async def _replace_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await discard_producer(producer, self._config.request_timeout)

    def on_revoke(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Await ``hook`` before partitions are given up (see ``Consumer.on_revoke``)."""
        self._revoke_hooks.append(hook)

    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions this member owns now (none while a rebalance is under way)."""
        consumer = self._running()
        if self._rebalancing:
            # aiokafka keeps reporting the revoked partitions until the new assignment
            # arrives; another member may already own them by then.
            return frozenset()
        return frozenset(self._names.from_kafka(tp) for tp in consumer.assignment())

    def pause(self, *partitions: TopicPartition) -> None:
        """Stop fetching from these partitions (positions are kept)."""
        owned = self._owned(partitions)
        if owned:
            self._running().pause(*owned)

    def resume(self, *partitions: TopicPartition) -> None:
        """Fetch from these partitions again."""
        owned = self._owned(partitions)
        if owned:
            self._running().resume(*owned)

    async def seek(self, partition: TopicPartition, offset: int) -> None:
        """Move the fetch position of an owned partition (does not commit)."""
        try:
            self._running().seek(self._names.to_kafka(partition), offset)
            self._next[self._names.to_kafka(partition)] = offset
        except (kafka_errors.IllegalStateError, AssertionError) as exc:
            raise BusError(f"group {self._group} does not own {partition}") from exc

    async def committed(self, partition: TopicPartition) -> int:
        """The group's committed next offset of a partition (0 when never committed)."""
        offset = await self._fetch_committed(partition)
        return 0 if offset is None else offset

    async def _fetch_committed(self, partition: TopicPartition) -> int | None:
        try:
            fetched = await self._running().committed(self._names.to_kafka(partition))
        except KAFKA_FAILURES as exc:
            raise map_error(exc, f"committed offset of {partition}") from exc
        mine = self._committed.get(partition)
        if fetched is None:
            return mine
        return int(fetched) if mine is None else max(int(fetched), mine)

    async def before_revoke(self, revoked: Any) -> None:
        """Called by the rebalance: let an open transaction finish before giving up partitions."""
        log.info("group %s: revoking %s", self._group, sorted(map(str, revoked)))
        try:
            async with asyncio.timeout(self._config.transaction_timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning("group %s: transaction still open at revocation", self._group)
        if revoked:
            await self._run_revoke_hooks()
        # Only partitions with records in hand need their position back; the others start
        # from the committed offset, which is where they are anyway.
        self._positions = {tp: self._next.pop(tp) for tp in revoked if tp in self._next}
        for tp in revoked:
            if tp not in self._positions:
                self._committed.pop(self._names.from_kafka(tp), None)
        self._rebalancing = True

    async def _run_revoke_hooks(self) -> None:
        for hook in self._revoke_hooks:
            try:
                async with asyncio.timeout(self._config.transaction_timeout):
                    await hook()
            except (TimeoutError, BusError) as exc:
                # The work stays uncommitted; its new owner redoes it (at least once).
                log.warning("group %s: revoke hook failed: %r", self._group, exc)

    def after_assign(self, assigned: Any) -> None:
        """Called by the rebalance once this member's new partitions are known."""
        log.info("group %s: assigned %s", self._group, sorted(map(str, assigned)))
        positions, self._positions = self._positions, {}
        for tp, position in positions.items():
            if tp in assigned and self._consumer is not None:
                self._consumer.seek(tp, position)  # ours again: carry on where we were
                self._next[tp] = position
            else:
                ours = self._names.from_kafka(tp)
                self._lost.add(ours)
                self._committed.pop(ours, None)
        self._rebalancing = False

    def _owned(self, partitions: Sequence[TopicPartition]) -> list[Any]:
        assigned = self._running().assignment()
        wanted = [self._names.to_kafka(tp) for tp in partitions]
        return [tp for tp in wanted if tp in assigned]

    def _running(self) -> Any:
        if self._consumer is None:
            raise BusUnavailable(f"consumer of group {self._group} is not started")
        return self._consumer
