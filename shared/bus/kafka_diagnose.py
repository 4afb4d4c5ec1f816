"""Why a Kafka producer got no acknowledgement: what the brokers answered it lately.

An idempotent, transactional aiokafka producer retries a produce request that failed with a
retriable error (NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT, NOT_LEADER_OR_FOLLOWER, a broken
connection) until it succeeds: its caller only sees its own deadline pass. For the operator
reading "answered 451" that is not enough; the reason is in the broker's answers. This
module keeps, per producer, the last error each partition and each broker gave in the last
minute (:class:`ProduceTrouble`), and words them in one line for the log and the
``BusUnavailable`` message: ``NOT_ENOUGH_REPLICAS on postline.submitted[0,3]: fewer
in-sync replicas than min.insync.replicas (brokers down?)``.

It observes the producer's client (each request's response or failure) and changes nothing
it sends or receives; it decides nothing (``kafka_publisher`` and ``kafka_consumer`` do).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiokafka import errors as kafka_errors

from shared.bus.kafka_common import WireNames

#: Answers older than this are not part of the current trouble.
MEMORY = 60.0

#: What an error means for someone who does not know Kafka's codes.
_HINTS: dict[type[BaseException], str] = {
    kafka_errors.NotEnoughReplicasError: (
        "fewer in-sync replicas than min.insync.replicas (brokers down?)"
    ),
    kafka_errors.NotEnoughReplicasAfterAppendError: (
        "fewer in-sync replicas than min.insync.replicas (brokers down?)"
    ),
    kafka_errors.RequestTimedOutError: (
        "the leader did not get enough followers' acknowledgements in time"
    ),
    kafka_errors.NotLeaderForPartitionError: "leadership is moving to another broker",
    kafka_errors.LeaderNotAvailableError: "the partition has no leader (election under way)",
    kafka_errors.KafkaStorageError: "the broker cannot write its log (full or failed disk?)",
}


class ProduceTrouble:
    """The recent failures of one producer's requests (see the module docstring)."""

    def __init__(self, names: WireNames, clock: Callable[[], float] = time.monotonic) -> None:
        self._names = names
        self._clock = clock
        # (wire topic, partition, error) -> when last seen: a retired producer's later
        # INVALID_PRODUCER_EPOCH must not hide the NOT_ENOUGH_REPLICAS that started it all.
        self._partitions: dict[tuple[str, int, type[BaseException]], float] = {}
        self._brokers: dict[int, tuple[str, float]] = {}

    def watch(self, producer: Any) -> None:
        """Observe every request ``producer``'s client sends from now on."""
        client = producer.client
        send = client.send

        async def observed(node_id: int, request: Any, **kwargs: Any) -> Any:
            try:
                response = await send(node_id, request, **kwargs)
            except kafka_errors.KafkaError as exc:
                self._brokers[node_id] = (type(exc).__name__, self._clock())
                raise
            self.saw_response(response)
            return response

        client.send = observed

    def saw_response(self, response: Any) -> None:
        """Note the partition errors of a produce response (other responses are ignored)."""
        if not type(response).__name__.startswith("ProduceResponse"):
            return
        now = self._clock()
        for topic, partitions in response.topics:
            for info in partitions:
                partition, code = info[0], info[1]
                if code:
                    self._partitions[(topic, partition, kafka_errors.for_code(code))] = now

    def explain(self) -> str:
        """One line naming what the brokers answered in the last minute ("" if nothing)."""
        since = self._clock() - MEMORY
        by_error: dict[type[BaseException], dict[str, list[int]]] = {}
        for (topic, partition, error), at in sorted(
            self._partitions.items(), key=lambda item: (item[0][2] not in _HINTS, item[0][:2])
        ):
            if at >= since:
                topics = by_error.setdefault(error, {})
                topics.setdefault(self._names.logical(topic), []).append(partition)
        parts = []
        for error, topics in by_error.items():
            where = ", ".join(f"{t}[{','.join(map(str, ps))}]" for t, ps in topics.items())
            code = getattr(error, "message", error.__name__)
            hint = _HINTS.get(error)
            parts.append(f"{code} on {where}" + (f": {hint}" if hint else ""))
        unreachable = sorted(
            (node, name) for node, (name, at) in self._brokers.items() if at >= since
        )
        if unreachable:
            nodes = ", ".join(f"{node} ({name})" for node, name in unreachable)
            parts.append(f"requests to broker {nodes} failed")
        return "; ".join(parts)

    def clear(self) -> None:
        """Forget everything (after a success: the trouble is over)."""
        self._partitions.clear()
        self._brokers.clear()
