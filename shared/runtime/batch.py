"""The consume -> handle -> one-transaction loop every topic-reading stage runs.

A stage gives a topic and a ``handle`` coroutine that turns decoded input records into output
records. This loop owns everything around it:

- **Exactly-once between topics.** A batch's outputs and its input offsets (the next offset per
  partition) go into ONE ``Consumer.transaction()``; either both happen or neither does.
- **A poison record never stalls a partition.** Bytes that do not decode become a
  :class:`~shared.wire.records.DeadLetter` on ``postline.dead`` in the same transaction. When
  ``handle`` raises on a batch, the batch is retried one record at a time, each in its own
  transaction; a record that raises :class:`~shared.errors.PoisonRecord` (at once) or anything
  else ``record_attempts`` times is dead-lettered with the reason, and the partition goes on.
- **A bus failure is not the record's fault.** On :class:`~shared.errors.BusError` nothing is
  dead-lettered: the consumer is rewound to the first uncommitted offset and the loop backs off
  (exponential, capped) and tries again. Neither is a failure of what ``handle`` writes to
  besides the bus (the store stage's database): a stage passes an :class:`Outage` naming
  those errors, and the loop rewinds and lets the outage back off the same way.
- **Drain.** Once ``ctx.stopping`` is set the current batch is finished and committed, then the
  consumer leaves its group.
- **State kept across batches** (optional, :class:`BatchState`): a handler that accumulates
  (the reputation stage's windows) learns whether what its last ``handle`` call changed was
  committed or must be forgotten (a failed transaction, a retried or dead-lettered record),
  and when the partitions it owns changed (reload from where the state is kept).

It does not decide what a record means (that is ``handle``) nor retry deliveries to the outside
world (the deliverer's retry tiers).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from shared.bus.base import BusMessage, Consumer, TopicPartition
from shared.errors import BusError, DecodeError, PoisonRecord, RecordTooLarge
from shared.runtime.consume import (
    BUS_BACKOFF,
    RECORD_BACKOFF,
    Backoff,
    BusTrouble,
    Item,
    dead_letter,
    decode,
    reason,
    where,
)
from shared.runtime.metrics import CoreMetrics, reason_class
from shared.runtime.stage import StageContext
from shared.wire.records import Record
from shared.wire.topics import OutRecord, Topic

__all__ = ["Backoff", "BatchState", "Handler", "Item", "Outage", "run_batch_loop"]

R = TypeVar("R", bound=Record)

Handler = Callable[[Sequence[Item[R]]], Awaitable[Sequence[OutRecord]]]


class BatchState(Protocol):
    """A handler's state that outlives a batch, kept in step with the transactions.

    ``handle`` changes the state tentatively; exactly one of :meth:`committed` or
    :meth:`discarded` follows each call, before the next one. Without this, a batch whose
    transaction failed would be counted twice: once in memory, once more when fetched again.
    """

    def committed(self) -> None:
        """What the last ``handle`` call changed is committed with its outputs: keep it."""

    def discarded(self) -> None:
        """The last ``handle`` call's changes were not committed (its records come again or
        are dead-lettered): forget them."""

    async def assigned(self, partitions: frozenset[TopicPartition]) -> None:
        """The consumer owns ``partitions`` now (first at start, again after a rebalance),
        before any of their records is handled: load the state as committed. A
        ``BusError`` leaves the records to be fetched again and this called again."""


class Outage(Protocol):
    """Something ``handle`` depends on besides the bus (a database) that can be down.

    When ``handle`` raises one of :attr:`errors`, the batch is not the records' fault: the
    loop rewinds it (nothing dead-lettered, no offset committed) and awaits :meth:`failed`,
    which holds readiness and waits out a back-off; :meth:`ok` follows the next batch
    committed.
    """

    errors: tuple[type[Exception], ...]

    async def failed(self, exc: Exception) -> None:
        """Count, log, hold readiness and wait (less once the stage is stopping)."""

    def ok(self) -> None:
        """A batch committed: the dependency answers again."""


class _Rewind(Exception):
    """The bus failed mid-batch; the batch's uncommitted records are fetched again."""


async def run_batch_loop(
    ctx: StageContext,
    *,
    group: str,
    topic: Topic[R],
    handle: Handler[R],
    max_records: int = 200,
    poll_timeout: float = 0.5,
    metrics: CoreMetrics,
    record_attempts: int = 3,
    record_backoff: Backoff = RECORD_BACKOFF,
    bus_backoff: Backoff = BUS_BACKOFF,
    set_ready: bool = True,
    state: BatchState | None = None,
    outage: Outage | None = None,
) -> None:
    """Consume ``topic`` as ``group`` until ``ctx.stopping``; see the module docstring.

    ``set_ready``: call ``ctx.set_ready()`` once the consumer joined its group (a stage that
    runs several loops passes ``False`` and decides readiness itself). ``state``: the
    handler's :class:`BatchState`, told of commits, discards and assignments. ``outage``:
    the errors of ``handle`` that mean a dependency is down (:class:`Outage`).
    """
    loop = _BatchLoop(
        ctx,
        group=group,
        topic=topic,
        handle=handle,
        metrics=metrics,
        record_attempts=record_attempts,
        record_backoff=record_backoff,
        bus_backoff=bus_backoff,
        state=state,
        outage=outage,
    )
    consumer = await loop.start_consumer()
    if consumer is None:
        return
    try:
        if set_ready:
            ctx.set_ready()
        while not ctx.stopping.is_set():
            try:
                await loop.finish_rewind(consumer)
                messages = await consumer.fetch(max_records, poll_timeout)
            except BusError as exc:
                await loop.bus.failed(exc)
                continue
            loop.bus.ok()
            if not await loop.check_assignment(consumer, messages):
                continue
            if messages:
                await loop.process(consumer, messages)
    finally:
        try:
            await consumer.stop()
        except BusError as exc:
            ctx.log.warning("consumer stop failed", extra={"group": group, "error": str(exc)})


class _BatchLoop(Generic[R]):
    """The state of one running loop: what it reads, how it retries, what it counts."""

    def __init__(
        self,
        ctx: StageContext,
        *,
        group: str,
        topic: Topic[R],
        handle: Handler[R],
        metrics: CoreMetrics,
        record_attempts: int,
        record_backoff: Backoff,
        bus_backoff: Backoff,
        state: BatchState | None = None,
        outage: Outage | None = None,
    ) -> None:
        self.ctx = ctx
        self.group = group
        self.topic = topic
        self.handle = handle
        self.metrics = metrics
        self.record_attempts = max(1, record_attempts)
        self.record_backoff = record_backoff
        self.bus = BusTrouble(ctx, group, metrics, bus_backoff)
        self.state = state
        self.outage = outage
        #: What ``handle`` raises when its dependency is down: rewound like a bus failure.
        self.down: tuple[type[Exception], ...] = (BusError, *(outage.errors if outage else ()))
        self.owned: frozenset[TopicPartition] = frozenset()
        #: Rewinds whose seek failed (the bus was down): done before the next fetch, or that
        #: fetch would read on past the uncommitted records and a later commit skip them.
        self.rewinds: dict[TopicPartition, int] = {}

    async def start_consumer(self) -> Consumer | None:
        """Join the group, retrying while the bus is down; ``None`` when stopped first."""
        consumer = self.ctx.bus.consumer(self.group, [self.topic.name])
        if self.state is not None:
            consumer.on_revoke(self._revoked)
        while not self.ctx.stopping.is_set():
            try:
                await consumer.start()
            except BusError as exc:
                await self.bus.failed(exc)
                continue
            self.bus.ok()
            return consumer
        return None

    async def _revoked(self) -> None:
        """Partitions are being given up: whatever is assigned next is loaded afresh, even
        the same set (another member may have owned and changed them in between, unseen
        by a fetch that only met the rebalance's empty assignment)."""
        self.owned = frozenset()

    async def check_assignment(self, consumer: Consumer, messages: Sequence[BusMessage]) -> bool:
        """Tell the state of a new assignment before handling ``messages``; ``False`` when
        it could not load (the messages are rewound, to be fetched again)."""
        if self.state is None:
            return True
        owned = consumer.assignment()
        if not owned or owned == self.owned:
            return True
        try:
            await self.state.assigned(owned)
        except BusError as exc:
            await self._rewind(consumer, messages, {})
            await self.bus.failed(exc)
            return False
        self.owned = owned
        return True

    async def process(self, consumer: Consumer, messages: Sequence[BusMessage]) -> None:
        """Handle one fetched batch completely: committed, or rewound after a bus failure."""
        self.metrics.batch_size.labels(self.ctx.name).observe(len(messages))
        committed: dict[TopicPartition, int] = {}
        async with self.ctx.activity():
            try:
                if not await self._whole_batch(consumer, messages):
                    for message in messages:
                        await self._one_record(consumer, message)
                        committed[message.tp] = message.offset + 1
                self.bus.ok()
                if self.outage is not None:
                    self.outage.ok()
            except _Rewind as rewind:
                await self._rewind(consumer, messages, committed)
                cause = rewind.__cause__
                if self.outage is not None and isinstance(cause, self.outage.errors):
                    await self.outage.failed(cause)
                    return
                await self.bus.failed(
                    cause if isinstance(cause, BusError) else BusError(str(rewind))
                )

    async def _whole_batch(self, consumer: Consumer, messages: Sequence[BusMessage]) -> bool:
        """Try the batch in one transaction; ``False`` when ``handle`` (or an output) failed."""
        items: list[Item[R]] = []
        dead: list[tuple[BusMessage, Exception]] = []
        for message in messages:
            try:
                items.append(Item(self._decode(message), message))
            except DecodeError as undecodable:
                dead.append((message, undecodable))
        try:
            outputs = list(await self.handle(items)) if items else []
        except self.down as exc:
            self._discarded()
            raise _Rewind("handler hit a bus failure or an outage") from exc
        except Exception as exc:  # any handler failure: isolate the culprit record by record
            self._discarded()
            self.ctx.log.info(
                "batch failed, retrying record by record",
                extra={"stage": self.ctx.name, "error": repr(exc)},
            )
            return False
        outputs += [self._dead_letter(m, why) for m, why in dead]
        try:
            await self._commit(consumer, outputs, _next_offsets(messages), len(messages))
        except RecordTooLarge:
            return False
        for message, why in dead:
            self._log_dead(message, why)
        return True

    async def _one_record(self, consumer: Consumer, message: BusMessage) -> None:
        """Process one record in its own transaction; dead-letter it when it cannot be."""
        offsets = {message.tp: message.offset + 1}
        failure: Exception
        try:
            outputs = await self._handle_one(message)
            await self._commit(consumer, outputs, offsets, 1)
            return
        except (DecodeError, PoisonRecord, RecordTooLarge) as exc:
            failure = exc
        except _Attempts as attempts:
            failure = attempts.last
        try:
            await self._commit(consumer, [self._dead_letter(message, failure)], offsets, 1)
        except RecordTooLarge:
            # The dead letter carries the original bytes; keep the reason and position at least.
            await self._commit(
                consumer, [self._dead_letter(message, failure, keep_value=False)], offsets, 1
            )
        self._log_dead(message, failure)

    async def _handle_one(self, message: BusMessage) -> Sequence[OutRecord]:
        item = Item(self._decode(message), message)
        last: Exception | None = None
        for attempt in range(1, self.record_attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self.record_backoff.delay(attempt - 1))
            try:
                return await self.handle([item])
            except (PoisonRecord, RecordTooLarge):
                self._discarded()
                raise
            except self.down as exc:
                self._discarded()
                raise _Rewind("handler hit a bus failure or an outage") from exc
            except Exception as exc:  # retried, then dead-lettered with its reason
                self._discarded()
                last = exc
                self.ctx.log.info(
                    "record failed, retrying"
                    if attempt < self.record_attempts
                    else "record failed",
                    extra=where(message) | {"error": repr(exc)},
                )
        assert last is not None
        raise _Attempts(last)

    async def _commit(
        self,
        consumer: Consumer,
        outputs: Sequence[OutRecord],
        offsets: dict[TopicPartition, int],
        count: int,
    ) -> None:
        """Publish ``outputs`` and commit ``offsets`` (``count`` input records) atomically."""
        started = time.monotonic()
        try:
            async with consumer.transaction() as txn:
                for record in outputs:
                    await txn.publish(record)
                txn.commit_offsets(offsets)
        except RecordTooLarge:
            self._discarded()
            raise
        except BusError as exc:
            self._discarded()
            raise _Rewind("transaction failed") from exc
        except BaseException:
            self._discarded()
            raise
        if self.state is not None:
            self.state.committed()
        self.metrics.transaction_seconds.labels(self.ctx.name).observe(time.monotonic() - started)
        self.metrics.records_consumed.labels(self.ctx.name, self.topic.name).inc(count)

    async def _rewind(
        self,
        consumer: Consumer,
        messages: Sequence[BusMessage],
        committed: dict[TopicPartition, int],
    ) -> None:
        """Move every partition of the batch back to its first uncommitted record."""
        firsts: dict[TopicPartition, int] = {}
        for message in messages:
            firsts.setdefault(message.tp, committed.get(message.tp, message.offset))
        self.rewinds.update(firsts)
        with contextlib.suppress(BusError):  # kept in ``rewinds``, tried again before a fetch
            await self.finish_rewind(consumer)

    async def finish_rewind(self, consumer: Consumer) -> None:
        """Seek every partition still to be rewound; ``BusError`` leaves the rest pending."""
        if not self.rewinds:
            return
        assigned = consumer.assignment()
        for tp, offset in list(self.rewinds.items()):
            if tp in assigned:
                # A partition revoked meanwhile restarts from its committed offset anyway.
                await consumer.seek(tp, offset)
            del self.rewinds[tp]

    def _discarded(self) -> None:
        if self.state is not None:
            self.state.discarded()

    def _decode(self, message: BusMessage) -> R:
        return decode(self.topic, message)

    def _dead_letter(
        self, message: BusMessage, exc: BaseException, keep_value: bool = True
    ) -> OutRecord:
        return dead_letter(message, exc, self.group, keep_value=keep_value)

    def _log_dead(self, message: BusMessage, exc: BaseException) -> None:
        self.metrics.records_dead.labels(self.ctx.name, reason_class(exc)).inc()
        self.ctx.log.warning(
            "record dead-lettered",
            extra=where(message)
            | {"stage": self.ctx.name, "group": self.group, "reason": reason(exc)},
        )


class _Attempts(Exception):
    """``handle`` kept failing on one record; ``last`` is its final exception."""

    def __init__(self, last: Exception) -> None:
        self.last = last
        super().__init__(repr(last))


def _next_offsets(messages: Sequence[BusMessage]) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for message in messages:
        offsets[message.tp] = max(offsets.get(message.tp, 0), message.offset + 1)
    return offsets
