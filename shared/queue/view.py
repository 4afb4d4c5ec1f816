"""The queue as people see it: read the index and the replicas' live state, summarize, list,
find one message.

Two sources, each read in one go from a compacted topic (``shared.queue.index`` and
``services/deliverer/snapshot.py`` say why they exist):

- ``postline.queue``: every Delivery waiting in a retry tier, deferred or held, with its
  envelope, attempts, next attempt and last reply (the ``mailq`` of Postfix);
- ``postline.queue.live``: what each running deliverer holds in memory: its domain windows,
  the transactions in flight, the destination's last error and throttle, and what each lane
  fetched and has not committed yet.

:func:`summary` folds both into rows per destination domain, provider, tenant or source
address (``qshape``, ``kcli queue-summary``); :func:`select` and :func:`resolve` pick
entries; :func:`read_copy` fetches a Delivery's data from the record its entry names. Owns
no formatting for a terminal (``shared/cli/queue.py``) or for HTTP (the admin API).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from shared.bus.base import Bus, TopicPartition
from shared.config import Duration
from shared.errors import DecodeError, QueueInvalid, QueueNotFound
from shared.queue.index import DEFERRED
from shared.queue.targets import ALL, MESSAGE, Target
from shared.wire.records import DEFAULT_TENANT, Delivery, QueueEntry, QueueLoad, QueueSnapshot
from shared.wire.topics import OUTBOUND, QUEUE, QUEUE_LIVE

#: The dimensions a summary can be grouped by.
BY = ("domain", "provider", "tenant", "source")
#: A snapshot older than this many of its intervals is from a replica that is gone.
STALE_INTERVALS = 3.0
#: The shortest prefix of an id ``resolve`` accepts.
MIN_PREFIX = 6


async def read_entries(bus: Bus) -> list[QueueEntry]:
    """Every entry of the index now (one a newer writer made that this version cannot
    decode is left out), oldest submission first."""
    await bus.ensure_topics([QUEUE.name])
    entries: list[QueueEntry] = []
    for value in (await bus.read_table(QUEUE.name)).values():
        try:
            entries.append(QUEUE.decode(value))
        except DecodeError:
            continue
    return sorted(entries, key=lambda e: (e.submitted_at, e.message_id, e.domain))


async def read_snapshots(bus: Bus, now: float) -> list[QueueSnapshot]:
    """The live state of every running deliverer replica (stopped and stale ones left out)."""
    await bus.ensure_topics([QUEUE_LIVE.name])
    found: list[QueueSnapshot] = []
    for value in (await bus.read_table(QUEUE_LIVE.name)).values():
        try:
            snapshot = QUEUE_LIVE.decode(value)
        except DecodeError:
            continue
        if not snapshot.stopped and now - snapshot.at <= STALE_INTERVALS * snapshot.interval:
            found.append(snapshot)
    return sorted(found, key=lambda s: s.instance)


def tier_name(topic: str) -> str:
    """``postline.retry.5m`` -> ``5m``."""
    return topic.rsplit(".", 1)[-1]


def tier_order(names: Iterable[str]) -> list[str]:
    """Tier names, shortest first (names that are not durations last)."""

    def length(name: str) -> float:
        try:
            return float(Duration.parse(name))
        except ValueError:
            return float("inf")

    return sorted(set(names), key=lambda name: (length(name), name))


@dataclass
class Row:
    """What is queued for one domain, provider, tenant or source address."""

    name: str
    window: int = 0  # in a deliverer's memory, waiting for a connection
    in_flight: int = 0  # in an SMTP transaction now
    deferred: dict[str, int] = field(default_factory=dict)  # per retry tier
    held: int = 0  # in a tier without an attempt (suspended, paused, throttled, ...)
    scheduled: int = 0  # waiting for its send-at
    oldest: float = 0.0  # the earliest submission among them
    last_error: str = ""
    last_error_at: float = 0.0
    throttled_until: float = 0.0

    @property
    def total(self) -> int:
        """Every Delivery counted in the row."""
        return (
            self.window + self.in_flight + sum(self.deferred.values()) + self.held + self.scheduled
        )

    def older(self, submitted: float) -> None:
        """Count a Delivery submitted at ``submitted`` for the row's oldest."""
        if submitted > 0 and (not self.oldest or submitted < self.oldest):
            self.oldest = submitted

    def note_error(self, text: str, at: float) -> None:
        """Keep ``text`` as the last error if it is the latest one."""
        if text and at >= self.last_error_at:
            self.last_error, self.last_error_at = text, at

    def as_dict(self) -> dict[str, Any]:
        """The row as plain data (JSON)."""
        return {
            "name": self.name,
            "window": self.window,
            "in_flight": self.in_flight,
            "deferred": dict(self.deferred),
            "held": self.held,
            "scheduled": self.scheduled,
            "total": self.total,
            "oldest": self.oldest,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "throttled_until": self.throttled_until,
        }


@dataclass
class Summary:
    """The rows, the tiers seen, and per lane what replicas fetched and not committed."""

    by: str
    rows: list[Row]
    tiers: list[str]
    pending: dict[str, int]
    replicas: int

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain data (JSON)."""
        return {
            "by": self.by,
            "tiers": self.tiers,
            "pending": self.pending,
            "replicas": self.replicas,
            "rows": [row.as_dict() for row in self.rows],
        }


def _group(by: str, *, domain: str, provider: str, tenant: str, source: str) -> str:
    values = {"domain": domain, "provider": provider, "tenant": tenant, "source": source}
    return values[by] or ("os" if by == "source" else "-")


def summary(
    entries: Sequence[QueueEntry], snapshots: Sequence[QueueSnapshot], by: str = "domain"
) -> Summary:
    """Fold the index and the live state into rows grouped ``by`` (one of :data:`BY`),
    the largest first."""
    if by not in BY:
        raise QueueInvalid(f"summary by {by!r}: expected one of {', '.join(BY)}")
    rows: dict[str, Row] = {}
    for entry in entries:
        name = _group(
            by,
            domain=entry.domain,
            provider=entry.provider,
            tenant=entry.tenant or DEFAULT_TENANT,
            source=entry.source,
        )
        row = rows.setdefault(name, Row(name))
        count = 1  # a Delivery (a message's copy for one domain), whatever its recipients
        if entry.reason == DEFERRED:
            tier = tier_name(entry.tier)
            row.deferred[tier] = row.deferred.get(tier, 0) + count
        elif entry.reason == "scheduled":
            row.scheduled += count
        else:
            row.held += count
        row.older(entry.submitted_at)
        if entry.last_reply is not None:
            row.note_error(entry.detail or str(entry.last_reply), entry.last_attempt_at)
    pending: dict[str, int] = {}
    for snapshot in snapshots:
        for lane, count in snapshot.pending.items():
            pending[lane] = pending.get(lane, 0) + count
        for load in snapshot.loads:
            _add_load(rows, by, load)
    ordered = sorted(rows.values(), key=lambda r: (-r.total, r.name))
    tiers = tier_order(t for row in ordered for t in row.deferred)
    return Summary(by, ordered, tiers, pending, len(snapshots))


def _add_load(rows: dict[str, Row], by: str, load: QueueLoad) -> None:
    name = _group(
        by, domain=load.domain, provider=load.provider, tenant=load.tenant, source=load.source
    )
    row = rows.setdefault(name, Row(name))
    row.window += load.window
    row.in_flight += load.in_flight
    row.older(load.oldest)
    row.note_error(load.last_error, load.last_error_at)
    row.throttled_until = max(row.throttled_until, load.throttled_until)


def select(
    entries: Iterable[QueueEntry], *, domain: str = "", tenant: str = "", deferred: bool = False
) -> list[QueueEntry]:
    """The entries of ``domain`` and ``tenant`` ("" = any); ``deferred``: only those an
    attempt deferred (not held or scheduled)."""
    return [
        e
        for e in entries
        if (not domain or e.domain == domain)
        and (not tenant or (e.tenant or DEFAULT_TENANT) == tenant)
        and (not deferred or e.reason == DEFERRED)
    ]


def resolve(entries: Sequence[QueueEntry], wanted: str) -> list[QueueEntry]:
    """The entries of one message, named by its message id or a delivery id, or a unique
    prefix of either of at least :data:`MIN_PREFIX` characters. :class:`QueueNotFound`
    when nothing queued has that id, :class:`QueueInvalid` when a prefix is ambiguous."""
    wanted = wanted.strip()
    exact = [e for e in entries if wanted in (e.message_id, e.delivery_id)]
    if exact:
        return _of_message(entries, exact[0].message_id)
    if len(wanted) >= MIN_PREFIX:
        ids = {
            e.message_id
            for e in entries
            if e.message_id.startswith(wanted) or e.delivery_id.startswith(wanted)
        }
        if len(ids) > 1:
            raise QueueInvalid(f"id {wanted!r} is ambiguous: {', '.join(sorted(ids)[:5])} ...")
        if ids:
            return _of_message(entries, ids.pop())
    raise QueueNotFound(f"no queued message {wanted!r} (delivered, ended or never queued)")


def _of_message(entries: Sequence[QueueEntry], message_id: str) -> list[QueueEntry]:
    return [e for e in entries if e.message_id == message_id]


def check_target(
    entries: Sequence[QueueEntry], snapshots: Sequence[QueueSnapshot], target: Target
) -> None:
    """:class:`QueueNotFound` when nothing queued (deferred, held, or in a deliverer's
    window) is part of ``target``; ``all`` always passes (flushing an empty queue is fine)."""
    if target.kind == ALL:
        return
    for entry in entries:
        if target.matches(
            message_id=entry.message_id,
            domain=entry.domain,
            tenant=entry.tenant,
            provider=entry.provider,
            source=entry.source,
        ):
            return
    if target.kind != MESSAGE:
        for load in (load for s in snapshots for load in s.loads):
            if target.matches(
                message_id="",
                domain=load.domain,
                tenant=load.tenant,
                provider=load.provider,
                source=load.source,
            ):
                return
    raise QueueNotFound(f"nothing queued for {target}")


def domains_of(entries: Sequence[QueueEntry], target: Target) -> tuple[str, ...]:
    """The recipient domains a message target's queued mail goes to (for the action's
    ``domains``); () for other targets."""
    if target.kind != MESSAGE:
        return ()
    return tuple(sorted({e.domain for e in entries if e.message_id == target.name}))


async def read_copy(bus: Bus, entry: QueueEntry) -> Delivery | None:
    """The Delivery (with its data) from the record ``entry`` names; ``None`` when the entry
    names none or the record is gone (the lane topic's retention)."""
    if not entry.copy_topic or entry.copy_offset < 0:
        return None
    message = await bus.read_at(
        TopicPartition(entry.copy_topic, entry.copy_partition), entry.copy_offset
    )
    if message is None or message.value is None:
        return None
    try:
        delivery = OUTBOUND.decode(message.value)
    except DecodeError:
        return None
    return delivery if delivery.delivery_id == entry.delivery_id else None


def entry_dict(entry: QueueEntry) -> dict[str, Any]:
    """An entry as plain data (JSON)."""
    data: dict[str, Any] = msgspec.to_builtins(entry)
    data["tier"] = tier_name(entry.tier) if entry.tier else ""
    return data


def header_text(data: bytes) -> str:
    """A message's header block as text (CRLF as newlines; undecodable bytes replaced)."""
    end = data.find(b"\r\n\r\n")
    block = data[:end] if end >= 0 else data
    return block.decode("utf-8", "replace").replace("\r\n", "\n")
