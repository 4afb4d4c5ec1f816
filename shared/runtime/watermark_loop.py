"""The consume skeleton for out-of-order work: fetch, hand out, commit behind a watermark.

The deliverer (and any stage whose records finish in another order than they arrive) is a
:class:`WorkHandler` on this loop, as the signer and the bouncer are handlers on
``shared.runtime.batch``. The loop owns everything around the work:

- **Admission.** Records are fetched while fewer than ``max_in_flight`` are in hand, decoded
  (undecodable bytes become a dead letter at once) and given to the handler with a
  :class:`Ticket`. The handler does the work whenever it likes and ends it with
  ``ticket.finish(outputs)``; ``ticket.hold_until(t)`` leaves the record and the rest of its
  partition on the bus until ``t`` (retry tiers).
- **Exactly-once between topics.** Every ``flush_interval`` one bus transaction publishes the
  outputs of the contiguous finished prefix of each partition and commits those offsets
  (``shared.runtime.watermark``); a crash redoes only unfinished work.
- **No record pins a partition.** Work that raises is ended by ``ticket.fail(exc)`` with the
  handler's failure outcome (the deliverer defers the message with the reason); a handler that
  raises while admitting has the same fate; work with no outcome after ``max_hold`` seconds is
  failed with :class:`~shared.errors.WorkTimedOut`. When even the failure outcome cannot be
  built, the record is dead-lettered. Outputs too large for the bus are replaced by a dead
  letter of their input.
- **A failing bus** (fetch or commit) is counted, logged, holds readiness and is backed off
  (``shared.runtime.consume.BusTrouble``); finished work is kept and committed once the bus is back.
- **Rebalances and drain.** Before partitions move, finished work is committed; work of
  revoked partitions is dropped (the new owner redoes it). On stop the handler drains within
  the drain timeout and a last transaction commits what finished.

It does not decide what a record means nor when to try again (the handler does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from shared.bus.base import BusMessage, Consumer, TopicPartition
from shared.errors import BusError, DecodeError, RecordTooLarge, WorkTimedOut
from shared.runtime.consume import (
    BUS_BACKOFF,
    Backoff,
    BusTrouble,
    Item,
    dead_letter,
    decode,
    where,
)
from shared.runtime.metrics import CoreMetrics, reason_class
from shared.runtime.stage import StageContext
from shared.runtime.watermark import Committable, Watermark
from shared.wire.records import Record
from shared.wire.topics import OutRecord, Topic

R = TypeVar("R", bound=Record)


class Ticket(Generic[R]):
    """One admitted record's place behind the watermark; its work ends it exactly once."""

    __slots__ = ("_loop", "admitted", "item")

    def __init__(self, loop: WatermarkLoop[R], item: Item[R], admitted: float) -> None:
        self._loop = loop
        self.item = item
        self.admitted = admitted  # monotonic seconds

    @property
    def tp(self) -> TopicPartition:
        """The partition the record came from."""
        return self.item.message.tp

    @property
    def offset(self) -> int:
        """The record's offset."""
        return self.item.message.offset

    def finish(self, outputs: Sequence[OutRecord]) -> bool:
        """The work ended: publish ``outputs`` with the offset; ``False`` if already ended."""
        return self._loop.finish(self, outputs)

    def fail(self, exc: Exception) -> bool:
        """The work raised: end it with the handler's failure outcome (or a dead letter)."""
        return self._loop.fail(self, exc)

    def hold_until(self, when: float) -> None:
        """Leave this record, and what follows it in its partition, on the bus until
        ``when`` (epoch seconds): the partition is paused there and fetched again then."""
        self._loop.hold(self, when)


class WorkHandler(Protocol[R]):
    """A stage's out-of-order work on the watermark loop."""

    def admit(self, ticket: Ticket[R]) -> None:
        """Take one record; end its work later with ``ticket.finish`` (or ``hold_until``)."""

    def failed(self, item: Item[R], exc: Exception) -> Sequence[OutRecord]:
        """The outputs for a record whose work raised ``exc`` (e.g. a retry record)."""

    def revoked(self, partitions: Collection[TopicPartition]) -> None:
        """Drop the queued work of partitions this consumer lost in a rebalance."""

    async def drain(self, timeout: float) -> None:
        """Stop taking work and finish or shed what is in hand, within ``timeout``."""

    def flushed(self) -> None:
        """Housekeeping after each commit (drop idle queues, update gauges)."""


@dataclass(frozen=True)
class LoopSettings:
    """How much work a loop holds and how often it commits."""

    max_in_flight: int = 1000  # records fetched and not yet committed
    fetch_batch: int = 200  # most records asked for per fetch
    flush_interval: float = 0.2  # seconds between commits
    max_hold: float | None = None  # fail work with no outcome after this many seconds


class WatermarkLoop(Generic[R]):
    """One consumer group's out-of-order loop; see the module docstring."""

    def __init__(
        self,
        ctx: StageContext,
        *,
        group: str,
        topics: Sequence[str],
        record: Topic[R],
        handler: WorkHandler[R],
        settings: LoopSettings,
        metrics: CoreMetrics,
        bus_backoff: Backoff = BUS_BACKOFF,
    ) -> None:
        self.ctx = ctx
        self.group = group
        self.record = record  # how to decode the input (every topic carries this record type)
        self.handler = handler
        self.settings = settings
        self.metrics = metrics
        self.consumer: Consumer = ctx.bus.consumer(group, list(topics))
        self.bus = BusTrouble(ctx, group, metrics, bus_backoff)
        self._watermark = Watermark()
        self._tickets: dict[tuple[TopicPartition, int], Ticket[R]] = {}
        self._held: dict[TopicPartition, float] = {}  # paused partition -> resume at (epoch)
        self._held_now: set[TopicPartition] = set()  # held during the current admission
        self._seeks: dict[TopicPartition, int] = {}  # held partitions still to seek and pause
        # Commit finished work before a rebalance moves its partitions, so the next owner
        # does not redo it; only the work still in flight is redone (at-least-once).
        self.consumer.on_revoke(self.flush)

    @property
    def pending(self) -> int:
        """Records fetched and not yet committed."""
        return self._watermark.pending

    async def start(self) -> bool:
        """Join the group, retrying while the bus is down; ``False`` when stopped first."""
        while not self.ctx.stopping.is_set():
            try:
                await self.consumer.start()
            except BusError as exc:
                await self.bus.failed(exc)
                continue
            self.bus.ok()
            return True
        return False

    async def run(self) -> None:
        """Fetch, hand out and commit until ``ctx.stopping``; then drain and commit."""
        settings = self.settings
        last_flush = time.monotonic()
        while not self.ctx.stopping.is_set():
            self._resume_due(time.time())
            room = settings.max_in_flight - self._watermark.pending
            if room > 0:
                try:
                    batch = await self.consumer.fetch(
                        min(room, settings.fetch_batch), timeout=self._fetch_timeout()
                    )
                except BusError as exc:
                    await self.bus.failed(exc)
                    continue
                self.bus.ok()
                self._admit_all(batch)
                await self._apply_holds()
            else:
                await asyncio.sleep(settings.flush_interval)
            if time.monotonic() - last_flush >= settings.flush_interval:
                await self.flush()
                last_flush = time.monotonic()
        await self._drain()

    async def stop(self) -> None:
        """Leave the group (a bus failure here is logged: the group expires us anyway)."""
        try:
            await self.consumer.stop()
        except BusError as exc:
            self.ctx.log.warning(
                "consumer stop failed", extra={"group": self.group, "error": str(exc)}
            )

    # -- admission -----------------------------------------------------------------------

    def _admit_all(self, batch: Sequence[BusMessage]) -> None:
        if batch:
            self.metrics.batch_size.labels(self.ctx.name).observe(len(batch))
        self._held_now.clear()
        now = time.monotonic()
        for message in batch:
            if message.tp in self._held_now:
                continue  # its partition waits behind a held record: fetched again later
            if self._watermark.add(message.tp, message.offset):
                self._admit(message, now)

    def _admit(self, message: BusMessage, now: float) -> None:
        try:
            item = Item(decode(self.record, message), message)
        except DecodeError as exc:
            self._watermark.finish(message.tp, message.offset, [self._dead(message, exc)])
            return
        ticket = Ticket(self, item, now)
        self._tickets[(message.tp, message.offset)] = ticket
        try:
            self.handler.admit(ticket)
        except Exception as exc:  # the handler's bug must not pin the partition
            ticket.fail(exc)

    # -- ending work (called through Ticket) -----------------------------------------------

    def finish(self, ticket: Ticket[R], outputs: Sequence[OutRecord]) -> bool:
        """See :meth:`Ticket.finish`."""
        if self._tickets.pop((ticket.tp, ticket.offset), None) is None:
            return False
        return self._watermark.finish(ticket.tp, ticket.offset, outputs)

    def fail(self, ticket: Ticket[R], exc: Exception) -> bool:
        """See :meth:`Ticket.fail`."""
        if (ticket.tp, ticket.offset) not in self._tickets:
            return False
        reason = "timeout" if isinstance(exc, WorkTimedOut) else "error"
        self.metrics.work_failures.labels(self.ctx.name, reason).inc()
        self.ctx.log.error(
            "work failed; ending it with the failure outcome",
            extra=where(ticket.item.message) | {"stage": self.ctx.name, "error": repr(exc)},
            exc_info=exc if reason == "error" else None,
        )
        try:
            outputs = list(self.handler.failed(ticket.item, exc))
        except Exception as failure:  # not even a failure outcome: keep the record aside
            outputs = [self._dead(ticket.item.message, failure)]
        return self.finish(ticket, outputs)

    def hold(self, ticket: Ticket[R], when: float) -> None:
        """See :meth:`Ticket.hold_until`."""
        tp = ticket.tp
        for key in [k for k in self._tickets if k[0] == tp and k[1] >= ticket.offset]:
            del self._tickets[key]
        self._watermark.truncate(tp, ticket.offset)
        self._held_now.add(tp)
        self._held[tp] = when
        self._seeks[tp] = ticket.offset

    # -- commits ---------------------------------------------------------------------------

    async def flush(self) -> None:
        """One transaction: the outputs of the finished prefix plus its offsets."""
        self._forget_revoked()
        self._fail_overdue(time.monotonic())
        taken = self._watermark.take()
        if len(taken):
            try:
                await self._commit(taken.outputs, taken.offsets)
            except RecordTooLarge:
                await self._commit_each(taken)
            except BusError as exc:
                await self._keep(taken, exc)
                return
            self.bus.ok()
            for tp, _, _ in taken.finished:
                self.metrics.records_consumed.labels(self.ctx.name, tp.topic).inc()
        self.handler.flushed()

    async def _commit(
        self, outputs: Sequence[OutRecord], offsets: dict[TopicPartition, int]
    ) -> None:
        started = time.monotonic()
        async with self.consumer.transaction() as txn:
            for record in outputs:
                await txn.publish(record)
            txn.commit_offsets(offsets)
        self.metrics.transaction_seconds.labels(self.ctx.name).observe(time.monotonic() - started)

    async def _commit_each(self, taken: Committable) -> None:
        """An output was too large for the bus: commit record by record, and replace the
        outputs of the record that cannot be published by a dead letter of its input."""
        for index, (tp, offset, outputs) in enumerate(taken.finished):
            try:
                await self._commit(outputs, {tp: offset + 1})
            except RecordTooLarge as exc:
                message = BusMessage(tp.topic, tp.partition, offset, None, None, 0.0)
                await self._commit([self._dead(message, exc)], {tp: offset + 1})
            except BusError as exc:
                await self._keep(Committable(taken.finished[index:]), exc)
                return

    async def _keep(self, taken: Committable, exc: BusError) -> None:
        """The transaction failed: keep the finished work, read on after what we hold."""
        self._watermark.restore(taken)
        assigned = self.consumer.assignment()
        for tp, offset in self._watermark.next_offsets().items():
            if tp in assigned:
                try:
                    await self.consumer.seek(tp, offset)
                except BusError:
                    break  # the next fetch fails too and backs off; seek again then
        await self.bus.failed(exc)

    def _forget_revoked(self) -> None:
        owned = self.consumer.assignment()
        revoked = {tp for tp in self._watermark.partitions() if tp not in owned}
        revoked |= {tp for tp in self._held if tp not in owned}
        if not revoked:
            return
        for tp in revoked:
            # The new owner redoes this work from the committed offset (at-least-once);
            # committing it here would abort the transaction.
            self._watermark.forget(tp)
            self._held.pop(tp, None)
        for key in [k for k in self._tickets if k[0] in revoked]:
            del self._tickets[key]
        self.handler.revoked(revoked)

    def _fail_overdue(self, now: float) -> None:
        limit = self.settings.max_hold
        if limit is None:
            return
        # Tickets are kept in admission order, so the overdue ones come first: stop at the
        # first one still in time instead of looking at every ticket at every flush.
        overdue = []
        for ticket in self._tickets.values():
            if now - ticket.admitted <= limit:
                break
            overdue.append(ticket)
        for ticket in overdue:
            ticket.fail(WorkTimedOut(f"no outcome after {limit:g}s"))

    # -- held partitions -------------------------------------------------------------------

    async def _apply_holds(self) -> None:
        """Seek held partitions back to their held record and pause them, before the next
        fetch could read past it."""
        if not self._seeks:
            return
        assigned = self.consumer.assignment()
        for tp, offset in list(self._seeks.items()):
            if tp not in assigned:
                del self._seeks[tp]
                self._held.pop(tp, None)
                continue
            self.consumer.pause(tp)
            try:
                await self.consumer.seek(tp, offset)
            except BusError as exc:
                await self.bus.failed(exc)  # tried again before the next fetch
                return
            del self._seeks[tp]

    def release_holds(self) -> None:
        """Fetch every held partition again at once: the handler looks at its records anew
        (an operator's flush may concern them); a record still not due is held again."""
        for tp in self._held:
            self._held[tp] = 0.0

    def _resume_due(self, at: float) -> None:
        due = [tp for tp, when in self._held.items() if when <= at and tp not in self._seeks]
        for tp in due:
            del self._held[tp]
        if due:
            self.consumer.resume(*due)

    def _fetch_timeout(self) -> float:
        timeout = self.settings.flush_interval
        if self._held:
            timeout = min(timeout, min(self._held.values()) - time.time())
        return max(0.01, timeout)

    # -- drain -----------------------------------------------------------------------------

    async def _drain(self) -> None:
        timeout = float(self.ctx.config.core.runtime.drain_timeout)
        await self.handler.drain(timeout)
        await self.flush()

    def _dead(self, message: BusMessage, exc: BaseException) -> OutRecord:
        self.metrics.records_dead.labels(self.ctx.name, reason_class(exc)).inc()
        self.ctx.log.warning(
            "record dead-lettered",
            extra=where(message) | {"stage": self.ctx.name, "group": self.group, "error": str(exc)},
        )
        return dead_letter(message, exc, self.group, keep_value=not isinstance(exc, RecordTooLarge))
