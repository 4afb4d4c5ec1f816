"""One-record publishes for ``KafkaBus.publish``: durable without a transaction.

Kafka appends a record whole or not at all, so a publish of a single record needs no
transaction to be all-or-nothing: an idempotent acks=all produce is enough, and it is
durable on every in-sync replica when it is acknowledged (the same guarantee the
transactional path gives). It also costs a fraction of the wait: a transaction adds the
AddPartitionsToTxn and EndTxn round trips and the commit markers to the produce, which made
ingest's 250 wait about four times as long at the 99th percentile (issue 20). Ingest's
hand-off of a message on its way is one record (``services/ingest/handoff.py``), so this is
the path of almost every 250.

One idempotent producer serves every caller; concurrent records share its batches, since
aiokafka sends one request per broker at a time and fills the next batch meanwhile.
Read_committed readers see these records as soon as they are written, and never past a
transaction still open before them (the last stable offset), as before.

Deadlines: a record not acknowledged by its caller's deadline fails with ``BusUnavailable``
and the producer is retired: it gets ``kafka.request_timeout`` to deliver what it holds and
is then closed, so it does not retry forever. A record whose caller heard "not accepted"
may therefore still be written (sent at the deadline, or delivered while the producer is
retired), which means a duplicate after the client retries, never a loss. The group commit
has the same kind of window, narrower: only a commit request in flight at the deadline.
RFC 1047 describes it for every SMTP server.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from shared.bus.base import checked_size
from shared.bus.kafka_common import WireNames, map_error, retrieve_exception
from shared.bus.kafka_diagnose import ProduceTrouble
from shared.bus.kafka_producer import discard_producer, open_producer
from shared.bus.kafka_transaction import KAFKA_FAILURES
from shared.config import KafkaConfig
from shared.errors import BusUnavailable
from shared.wire.topics import OutRecord

log = logging.getLogger(__name__)


class SingleRecordPublisher:
    """Publishes one record per call with an idempotent producer (see the module doc)."""

    def __init__(self, config: KafkaConfig, names: WireNames) -> None:
        self._config = config
        self._names = names
        self._producer: Any = None
        self._opening: asyncio.Task[Any] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._trouble = ProduceTrouble(names)
        self._closed = False

    async def start(self) -> None:
        """Open the producer; ``BusUnavailable`` if Kafka is unreachable."""
        await self._current()

    async def close(self) -> None:
        """Wait for what is sent, then stop the producer."""
        self._closed = True
        if self._opening is not None:
            await asyncio.gather(self._opening, return_exceptions=True)
        producer, self._producer = self._producer, None
        if producer is not None:
            await discard_producer(producer, self._config.request_timeout)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    async def publish(self, record: OutRecord, timeout: float | None) -> None:
        """Publish ``record`` durably; ``BusUnavailable`` when not acknowledged in time,
        ``RecordTooLarge`` (before sending) past the bus's record limit.

        Without a timeout the wait is bounded by ``kafka.transaction_timeout``, as a
        transactional publish is by the broker.
        """
        checked_size([record])
        if self._closed:
            raise BusUnavailable("the Kafka bus is not started")
        limit = self._config.transaction_timeout if timeout is None else timeout
        producer = None
        try:
            async with asyncio.timeout(limit):
                producer = await self._current()
                sent = await producer.send(
                    self._names.wire(record.topic), value=record.value, key=record.key
                )
                await sent
        except TimeoutError:
            self._replace(producer)
            reason = self._trouble.explain()
            waited = f"Kafka did not acknowledge the record within {limit:g}s"
            raise BusUnavailable(f"{waited}: {reason}" if reason else waited) from None
        except KAFKA_FAILURES as exc:
            self._replace(producer)
            raise map_error(exc, "publish") from exc
        self._trouble.clear()

    async def _current(self) -> Any:
        """The producer, opened (once, for every caller waiting) when there is none.

        The opening is a task of its own: a caller whose deadline passes stops waiting for
        it, but does not cancel it half-way and leak a started producer.
        """
        if self._producer is not None:
            return self._producer
        if self._opening is None or self._opening.done():
            self._opening = asyncio.create_task(self._open())
            self._opening.add_done_callback(retrieve_exception)
        return await asyncio.shield(self._opening)

    async def _open(self) -> Any:
        producer = await open_producer(self._config, None)
        self._trouble.watch(producer)
        if self._closed:  # closed while it was opening
            await discard_producer(producer, self._config.request_timeout)
            raise BusUnavailable("the Kafka bus is closed")
        self._producer = producer
        return producer

    def _replace(self, producer: Any) -> None:
        """Retire ``producer`` (if it is still the current one): the next call opens anew."""
        if producer is None or producer is not self._producer:
            return
        self._producer = None
        task = asyncio.create_task(discard_producer(producer, self._config.request_timeout))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
