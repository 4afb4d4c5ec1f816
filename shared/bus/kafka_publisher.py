"""Group commit for ``KafkaBus.publish`` of several records: many publishers, one transaction.

A publish of several records must be all or nothing (the HTTP API's batch of messages, a
quarantine release with its tombstone and event, a batch of rejection events); a single
record needs no transaction and goes through ``kafka_single``. One transaction per call
would cost two coordinator round trips each; instead a single task drains the queue of
waiting publishers, sends all their records in one transaction and commits once, then
answers every caller (the group commit of databases). Records of one caller are
contiguous and in order inside the transaction.

Deadlines: a caller still waiting in the queue at its deadline withdraws and gets
``BusUnavailable`` (nothing was sent). Once taken into a group, the group runs until the
earliest deadline of its members; if it has not committed by then it is aborted (the
producer is replaced, which aborts the transaction on the broker) and every member gets
``BusUnavailable``. The one window without a definite answer is a commit request already
sent when the deadline passes: those callers get ``BusUnavailable`` and their records may
still appear, which means a duplicate after the client retries, never a loss (the same
window every SMTP server has between its 250 and the client reading it, RFC 1047).

A record the broker rejects as too large fails only its own caller (``RecordTooLarge``);
the other members of the group are put back in the queue and go out in the next group.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import errors as kafka_errors

from shared.bus.base import checked_size
from shared.bus.kafka_common import WireNames, map_error, retrieve_exception
from shared.bus.kafka_diagnose import ProduceTrouble
from shared.bus.kafka_producer import abort_quietly, discard_producer, open_producer
from shared.bus.kafka_transaction import KAFKA_FAILURES
from shared.config import KafkaConfig
from shared.errors import BusError, BusUnavailable
from shared.wire.topics import MAX_RECORD_BYTES, OutRecord

log = logging.getLogger(__name__)


_TOO_LARGE = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
)

#: How long a failed group's producer may take to abort before it is just closed.
RETIRE_ABORT_GRACE = 5.0

#: A group stops growing past this many bytes so one commit never waits on a huge backlog.
MAX_GROUP_BYTES = 4 * MAX_RECORD_BYTES

#: Pause after a commit before the next transaction. Until the broker has written the previous
#: transaction's markers (a millisecond or two) it answers the next AddPartitionsToTxn with
#: CONCURRENT_TRANSACTIONS, and aiokafka then backs off a fixed 20 ms (KAFKA-5477). Waiting
#: this long instead lets the next group start at once, and it grows while we wait.
MARKER_PAUSE = 0.003


@dataclass(eq=False)
class _Request:
    records: Sequence[OutRecord]
    deadline: float | None  # loop.time() by which the caller needs an answer
    future: asyncio.Future[None]
    taken: bool = False
    size: int = field(default=0)


class GroupCommitPublisher:
    """Publishes records of concurrent callers in shared transactions (see module doc)."""

    def __init__(self, config: KafkaConfig, names: WireNames, transactional_id: str) -> None:
        self._config = config
        self._names = names
        self._transactional_id = transactional_id
        self._queue: deque[_Request] = deque()
        self._wakeup = asyncio.Event()
        self._producer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._discarding: set[asyncio.Task[None]] = set()
        self._closing = False
        self._trouble = ProduceTrouble(names)

    async def start(self) -> None:
        """Open the producer (``BusUnavailable`` if Kafka is unreachable) and the worker."""
        if self._task is not None:
            return
        self._producer = await self._open()
        self._task = asyncio.create_task(self._run(), name=f"publish:{self._transactional_id}")
        self._task.add_done_callback(self._worker_done)

    async def close(self) -> None:
        """Publish what is queued, then stop the worker and the producer."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._discarding:
            await asyncio.gather(*self._discarding, return_exceptions=True)
        if self._producer is not None:
            await discard_producer(self._producer, self._config.request_timeout)
            self._producer = None

    async def publish(
        self,
        records: Sequence[OutRecord],
        timeout: float | None,
    ) -> None:
        """Publish ``records`` atomically and durably (see ``Bus.publish``)."""
        size = checked_size(records)
        if not records:
            return
        if self._closing or self._task is None:
            raise BusUnavailable("the Kafka bus is not started")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        request = _Request(records, deadline, loop.create_future(), size=size)
        # A caller cancelled after its group was taken no longer reads the answer.
        request.future.add_done_callback(retrieve_exception)
        self._queue.append(request)
        self._wakeup.set()
        try:
            await asyncio.wait_for(asyncio.shield(request.future), timeout)
        except TimeoutError:
            if not request.taken:
                request.future.cancel()  # withdrawn: the worker skips it
                raise BusUnavailable(
                    _with_reason(
                        f"Kafka did not accept the records within {timeout}s",
                        self._trouble.explain(),
                    )
                ) from None
            await request.future  # the worker answers by the same deadline
        except asyncio.CancelledError:
            if not request.taken:
                request.future.cancel()
            raise

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._producer is None and not await self._reopen():
                continue
            group = self._take_group()
            if group:
                await self._run_group(group)
                await asyncio.sleep(MARKER_PAUSE)

    async def _reopen(self) -> bool:
        """A fresh producer; on failure every queued caller learns it now, not at its timeout."""
        try:
            self._producer = await self._open()
            return True
        except BusError as exc:
            while self._queue:
                _answer(self._queue.popleft(), exc)
            return False

    async def _open(self) -> Any:
        producer = await open_producer(self._config, self._transactional_id)
        self._trouble.watch(producer)
        return producer

    def _take_group(self) -> list[_Request]:
        group: list[_Request] = []
        total = 0
        while self._queue and (not group or total + self._queue[0].size <= MAX_GROUP_BYTES):
            request = self._queue.popleft()
            if request.future.done():  # withdrawn by its caller
                continue
            request.taken = True
            group.append(request)
            total += request.size
        return group

    async def _run_group(self, group: list[_Request]) -> None:
        # The broker aborts a transaction older than transaction.timeout.ms anyway, so no
        # group waits longer than that, even for callers that gave no timeout.
        loop = asyncio.get_running_loop()
        deadlines = [r.deadline for r in group if r.deadline is not None]
        deadline = min([*deadlines, loop.time() + self._config.transaction_timeout])
        committing = False
        try:
            async with asyncio.timeout_at(deadline):
                failures = await self._send_group(group)
                if failures:
                    self._fail_some(group, failures)
                    self._replace_producer()
                    return
                committing = True
                await self._producer.commit_transaction()
        except KAFKA_FAILURES as exc:
            what = "commit (outcome unknown)" if committing else "publish"
            error = map_error(exc, what)
            if isinstance(exc, TimeoutError):
                # The producer retries retriable answers until the deadline: say which.
                waited = f"{what}: no acknowledgement from Kafka by the deadline"
                error = BusUnavailable(_with_reason(waited, self._trouble.explain()))
            log.warning("group of %d publish calls failed: %s", len(group), error)
            for request in group:
                _answer(request, error)
            self._replace_producer()
            return
        self._trouble.clear()
        for request in group:
            _answer(request, None)

    async def _send_group(self, group: list[_Request]) -> dict[int, BaseException]:
        """Send every record in one open transaction; index in group -> first failure."""
        producer = self._producer
        await producer.begin_transaction()
        pending: list[tuple[int, asyncio.Future[Any]]] = []
        failures: dict[int, BaseException] = {}
        for index, request in enumerate(group):
            for record in request.records:
                try:
                    sent = await producer.send(
                        self._names.wire(record.topic), value=record.value, key=record.key
                    )
                except _TOO_LARGE as exc:
                    failures.setdefault(index, exc)
                    break
                pending.append((index, sent))
        results = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
        for (index, _), result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                failures.setdefault(index, result)
        return failures

    def _fail_some(self, group: list[_Request], failures: dict[int, BaseException]) -> None:
        """Answer the callers whose records failed; requeue the innocent ones in front.

        A rejected too-large batch leaves a gap in the idempotent sequence, so later batches
        of the same transaction fail with OutOfOrderSequenceNumber: when a record was too
        large, only its callers are to blame and everyone else goes again.
        """
        too_large = {i for i, exc in failures.items() if isinstance(exc, _TOO_LARGE)}
        guilty = too_large or set(failures)
        innocent: list[_Request] = []
        for index, request in enumerate(group):
            if index in guilty:
                _answer(request, map_error(failures[index], "publish"))
            else:
                request.taken = False
                innocent.append(request)
        self._queue.extendleft(reversed(innocent))

    def _replace_producer(self) -> None:
        # Retiring the old producer can take a request timeout on a dead broker; the next
        # group need not wait for it: its new producer fences the old one anyway.
        producer, self._producer = self._producer, None
        if producer is not None:
            task = asyncio.create_task(self._retire(producer))
            self._discarding.add(task)
            task.add_done_callback(self._discarding.discard)

    async def _retire(self, producer: Any) -> None:
        # Abort now where the broker answers: until the open transaction ends, read_committed
        # readers of its partitions stop at it (the last stable offset), possibly for the
        # whole transaction timeout if no new producer came to fence it.
        await abort_quietly(producer, min(RETIRE_ABORT_GRACE, self._config.request_timeout))
        await discard_producer(producer, self._config.request_timeout)

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        # Never leave a caller waiting on a worker that is gone.
        if not task.cancelled() and task.exception() is not None:
            log.error("publish worker died", exc_info=task.exception())
        error = BusUnavailable("the Kafka publish worker stopped")
        for request in self._queue:
            _answer(request, error)
        self._queue.clear()


def _answer(request: _Request, error: BaseException | None) -> None:
    if request.future.done():
        return
    if error is None:
        request.future.set_result(None)
    else:
        request.future.set_exception(error)


def _with_reason(message: str, reason: str) -> str:
    return f"{message}: {reason}" if reason else message
