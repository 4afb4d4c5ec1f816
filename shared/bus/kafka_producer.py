"""The Kafka bus's aiokafka producers: how it opens them and throws them away.

Every producer is idempotent with acks=all; all but the one of single-record publishes
(``kafka_single``) are transactional. Owns the settings they share (acks=all,
idempotence, compression, request and transaction timeouts, request size for the largest
record), bounded start-up, and discarding a producer whose transaction state is unknown.
It does not decide what goes into a transaction (``kafka_publisher``, ``kafka_consumer``).

Why discard instead of repair: after a failed or timed-out transaction the producer may hold
batches it retries forever (idempotent batches never expire) and sequence numbers the broker
no longer agrees with. A new producer with the same transactional id gets a new epoch from
the coordinator, which aborts the old open transaction and fences the old producer (KIP-98),
so nothing the failed transaction wrote ever becomes visible to read_committed readers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors

from shared.bus.kafka_common import MAX_REQUEST_BYTES, client_kwargs, compression, map_error
from shared.config import KafkaConfig

log = logging.getLogger(__name__)

#: Small records of concurrent publishers share a batch per partition up to this size.
MAX_BATCH_BYTES = 512 * 1024


async def open_producer(config: KafkaConfig, transactional_id: str | None) -> Any:
    """A started transactional producer (``transactional_id`` ``None``: idempotent only,
    ``kafka_single``); raises ``BusUnavailable`` if Kafka cannot be reached or the
    transaction coordinator does not answer within the request timeout."""
    producer = AIOKafkaProducer(
        **client_kwargs(config),
        acks="all",
        enable_idempotence=True,
        transactional_id=transactional_id,
        transaction_timeout_ms=int(config.transaction_timeout * 1000),
        compression_type=compression(config),
        max_request_size=MAX_REQUEST_BYTES,
        max_batch_size=MAX_BATCH_BYTES,
    )
    try:
        # The first InitProducerId on a fresh broker waits for the transaction log topic.
        async with asyncio.timeout(config.request_timeout):
            await producer.start()
    except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
        await discard_producer(producer, config.request_timeout)
        raise map_error(exc, f"start producer {transactional_id or '(idempotent)'}") from exc
    return producer


async def discard_producer(producer: Any, grace: float) -> None:
    """Stop a producer, forcibly if it cannot flush within ``grace`` seconds (dead broker)."""
    try:
        async with asyncio.timeout(grace):
            await producer.stop()
        return
    except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
        log.warning("producer did not stop cleanly, closing it: %r", exc)
    finally:
        _retrieve_failures(producer)
    # stop() waits for pending batches that an idempotent producer retries forever; cancel
    # its sender task and close its connections so no task outlives the producer.
    sender_task = getattr(producer._sender, "sender_task", None)
    if sender_task is not None and not sender_task.done():
        sender_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, kafka_errors.KafkaError):
            await sender_task
    with contextlib.suppress(kafka_errors.KafkaError, OSError):
        await producer.client.close()


def _retrieve_failures(producer: Any) -> None:
    """Mark the exceptions of a failed producer's internal futures as seen.

    A fenced or broken aiokafka producer fails its transaction waiter and every batch's
    drain waiter, which nobody awaits once we give up on it: each would be logged as "Future
    exception was never retrieved" when garbage-collected. Besides the noise, formatting
    that traceback inside the collector re-enters ``ast.parse`` (CPython 3.11 computes
    caret anchors with it), which corrupts its recursion bookkeeping if the collection
    happened during another parse (``SystemError: AST constructor recursion depth
    mismatch``, fixed in later CPython releases).
    """
    futures: list[Any] = []
    txn_manager = getattr(producer, "_txn_manager", None)
    futures.append(getattr(txn_manager, "_transaction_waiter", None))
    accumulator = getattr(producer, "_message_accumulator", None)
    batches = list(getattr(accumulator, "_pending_batches", ()))
    for queue in getattr(accumulator, "_batches", {}).values():
        batches.extend(queue)
    futures.extend(getattr(batch, "_drain_waiter", None) for batch in batches)
    futures.extend(getattr(batch, "future", None) for batch in batches)
    for future in futures:
        if isinstance(future, asyncio.Future) and future.done() and not future.cancelled():
            future.exception()


async def abort_quietly(producer: Any, grace: float) -> bool:
    """Try to abort the producer's open transaction; False when the caller must discard it."""
    try:
        async with asyncio.timeout(grace):
            await producer.abort_transaction()
        return True
    except (kafka_errors.KafkaError, OSError, TimeoutError, AssertionError) as exc:
        # AssertionError: aiokafka's state machine refuses abort after a fatal error.
        log.warning("could not abort transaction, discarding producer: %r", exc)
        return False
