"""The books of a fault scenario: what was sent, accepted, published and delivered, counted.

    topics = read_topics(bootstrap, prefix)      # every record, read_committed, by topic
    counts = tally(attempts, received, topics)   # Counts: sent, 250s, lost, duplicates ...
    recovery_seconds(accepted_times, fault_at, rate)

What counts as what:

- **accepted**: messages ingest answered ``250`` (the promise); **deferred**: any 4xx;
  **failed**: the connection broke before a reply (the client keeps the message).
- **delivered**: accepted messages the sink MX hosts received at least once; **lost**:
  accepted and never received. **late**: received although ingest did not answer 250 (a
  commit whose outcome the client could not know: a duplicate risk, never a loss).
- **duplicated at the sink**: copies beyond the first of any message (at least once to the
  outside world: only deliveries in flight when a deliverer died may repeat).
- **duplicated between topics**: what a read_committed reader sees twice where a stage
  promised exactly once: a Submission id twice on ``postline.submitted``, a Delivery
  (delivery id, attempt) twice on one outbound or retry topic, an ``accepted`` or ``signed``
  event twice for one message. ``delivered`` events twice for one recipient go with sink
  duplicates and are counted apart.
- **dead letters**: records on ``postline.dead`` (good mail must never go there).
- **missing on the bus**: accepted messages with no Submission on ``postline.submitted``
  (a 250 that was not durable).

It reads and counts; scenarios decide what must hold.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.wire.records import Delivery, EventKind
from shared.wire.topics import DEAD, EVENTS, OUTBOUND, SUBMITTED
from testing.harness.steady import Attempt

#: Record values by logical topic name, in log order per partition.
Topics = dict[str, list[bytes]]


@dataclass(frozen=True)
class Counts:
    """One scenario's figures (see the module docstring for each)."""

    sent: int
    accepted: int
    deferred: int
    failed: int
    delivered: int
    lost: int
    late: int
    dup_sink: int
    dup_topics: int
    dup_delivered_events: int
    dead_letters: int
    missing_on_bus: int
    dup_detail: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return asdict(self)


def read_topics(bootstrap: str, prefix: str, timeout: float = 60.0) -> Topics:
    """Every record of every topic under ``prefix``, as a read_committed reader sees it."""
    return asyncio.run(asyncio.wait_for(_read(bootstrap, prefix), timeout))


async def _read(bootstrap: str, prefix: str) -> Topics:
    servers = bootstrap.split(",")
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        described = await admin.describe_topics(names) if names else []
    finally:
        await admin.close()
    tps = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
        max_partition_fetch_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    out: Topics = {name.removeprefix(prefix): [] for name in names}
    try:
        if not tps:
            return out
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)  # read_committed: the last stable offsets
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batches.items():
                out[tp.topic.removeprefix(prefix)] += [r.value for r in records if r.value]
            pending = {tp for tp in pending if await consumer.position(tp) < end[tp]}
    finally:
        await consumer.stop()
    return out


def tally(attempts: Sequence[Attempt], received: Iterable[str], topics: Topics) -> Counts:
    """The figures of the module docstring. ``received``: every recipient address the sinks
    accepted, once per copy."""
    copies = Counter(r.lower() for r in received)
    accepted = [a for a in attempts if a.code == 250]
    accepted_rcpts = {a.recipient.lower() for a in accepted}
    ours = {a.recipient.lower() for a in attempts}
    delivered = sum(1 for r in accepted_rcpts if copies[r])
    late = sum(1 for r in ours - accepted_rcpts if copies[r])
    dup_sink = sum(n - 1 for r, n in copies.items() if r in ours and n > 1)
    detail, dup_topics = _topic_duplicates(topics)
    delivered_events = Counter(
        (e.message_id, e.recipient.lower())
        for e in (EVENTS.decode(v) for v in topics.get(EVENTS.name, []))
        if e.kind == EventKind.DELIVERED
    )
    submitted = {SUBMITTED.decode(v).id for v in topics.get(SUBMITTED.name, [])}
    return Counts(
        sent=len(attempts),
        accepted=len(accepted),
        deferred=sum(1 for a in attempts if 400 <= a.code < 500),
        failed=sum(1 for a in attempts if a.code < 0),
        delivered=delivered,
        lost=len(accepted_rcpts) - delivered,
        late=late,
        dup_sink=dup_sink,
        dup_topics=dup_topics,
        dup_delivered_events=sum(n - 1 for n in delivered_events.values() if n > 1),
        dead_letters=len(topics.get(DEAD.name, [])),
        missing_on_bus=sum(1 for a in accepted if a.message_id not in submitted),
        dup_detail=tuple(detail),
    )


def _topic_duplicates(topics: Topics) -> tuple[list[str], int]:
    seen: Counter[tuple[str, str]] = Counter()
    for value in topics.get(SUBMITTED.name, []):
        seen[(SUBMITTED.name, SUBMITTED.decode(value).id)] += 1
    for name, values in topics.items():
        if name.startswith((OUTBOUND.name, "postline.retry.")):
            for value in values:
                delivery: Delivery = OUTBOUND.decode(value)
                seen[(name, f"{delivery.delivery_id}#{delivery.attempt}")] += 1
    for value in topics.get(EVENTS.name, []):
        event = EVENTS.decode(value)
        if event.kind in (EventKind.ACCEPTED, EventKind.SIGNED):
            seen[(f"{EVENTS.name}:{event.kind.value}", event.message_id)] += 1
    twice = {key: n for key, n in seen.items() if n > 1}
    detail = [f"{topic} {key} x{n}" for (topic, key), n in sorted(twice.items())]
    return detail[:20], sum(n - 1 for n in twice.values())


def recovery_seconds(
    accepted_at: Sequence[float],
    fault_at: float,
    rate: float,
    *,
    window: float = 3.0,
    share: float = 0.9,
    step: float = 0.1,
    until: float | None = None,
) -> float | None:
    """Seconds from ``fault_at`` to the start of the first ``window`` in which the 250s
    reached ``share`` of the offered ``rate`` (0 when the rate never dropped; ``None`` when
    it did not come back before ``until``)."""
    times = sorted(t for t in accepted_at if t >= fault_at)
    need = share * rate * window
    end = until if until is not None else (times[-1] if times else fault_at)
    start = fault_at
    while start + window <= end + 1e-9:
        count = sum(1 for t in times if start <= t < start + window)
        if count >= need:
            return round(start - fault_at, 1)
        start += step
    return None


def longest_gap(accepted_at: Sequence[float], start: float, end: float) -> float:
    """The longest time without a 250 between ``start`` and ``end`` (the outage)."""
    points = [start, *sorted(t for t in accepted_at if start <= t <= end), end]
    return round(max(b - a for a, b in itertools.pairwise(points)), 1)
