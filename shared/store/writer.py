"""One batch of events into the store, in one database transaction.

:func:`write_batch` makes sure the batch's days have partitions (``partitions.ensure``,
before the transaction: a partition is schema, idempotent, and the same for every
replica), then in ONE transaction:

1. looks up, in ``messages``, the origin (tenant, sender, campaign) of the events that lack
   it (the bouncer's asynchronous bounces and complaints, opens and clicks), the batch's own
   ``accepted`` events first;
2. inserts the events (``ON CONFLICT DO NOTHING RETURNING id``: a replayed event, the same
   bytes hence the same id, inserts nothing and is not returned);
3. inserts the ``messages`` rows of the ``accepted`` events;
4. adds the NEW events' counts to the rollups with upserts (``x = table.x + excluded.x``).

So a replay after a crash between the database commit and the bus's offset commit changes
nothing. PostgreSQL gets each table's rows as arrays in ONE statement (``INSERT ... SELECT
FROM unnest($1::int[], $2::bytea[], ...)``): a batch of 1000 is a handful of round trips.
SQLite runs the same statements row by row in its one thread.

Errors: :class:`~shared.errors.StoreUnavailable` when the database is down, slow, out of
room or had a deadlock (try the batch again later: not the records' fault);
:class:`~shared.errors.PoisonRecord` for an event no row can be made of (a time out of
range); any other :class:`~shared.errors.StoreError` is the database refusing a statement.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.errors import PoisonRecord, StoreError, StoreUnavailable
from shared.store import partitions
from shared.store.counters import DOMAIN_COUNTERS, HOURLY_COUNTERS, Rollups
from shared.store.db import Database, Executor
from shared.store.rows import (
    EVENT_COLUMNS,
    MESSAGE_COLUMNS,
    Origin,
    day_of,
    event_id,
    event_row,
    merged,
    message_row,
    needs_origin,
    own_origin,
)
from shared.wire.records import Event, EventKind

#: PostgreSQL array types of the columns that are not text.
_PG_TYPES = {
    "day": "int4",
    "id": "bytea",
    "at": "float8",
    "code": "int4",
    "machine": "bool",
    "recipients": "int4",
    "hour": "int8",
    "count": "int8",
    **{name: "int8" for name in HOURLY_COUNTERS},
}
#: SQLSTATEs (classes, or one code) that are the database's state, not the statement's:
#: connection (08), authorization (28: a rotated password), no such database (3D: dropped
#: or not created yet), transaction rollback: serialization, deadlock (40), insufficient
#: resources: disk full, out of memory (53), operator intervention: shutdown, statement
#: timeout (57), system error (58), and a missing table (42P01: a schema being restored).
#: Waited out, never blamed on the records: dead-lettering a whole stream for them would
#: lose reports an operator can get back by fixing the database.
_TRANSIENT = ("08", "28", "3D", "40", "53", "57", "58", "42P01")

_HOURLY_KEY = ("hour", "day", "tenant", "sender_domain", "campaign", "provider")
_REASON_KEY = ("hour", "day", "tenant", "campaign", "kind", "classification", "reason")
_DOMAIN_KEY = ("hour", "day", "tenant", "campaign", "recipient_domain")


@dataclass(frozen=True)
class WriteResult:
    """What one batch did to the store."""

    written: int  # events inserted
    duplicates: int  # events already there (a replay), or twice in the batch
    messages: int  # messages rows inserted
    newest_at: float  # the newest event time in the batch (0: empty)


@dataclass(frozen=True)
class _Prepared:
    """A batch deduplicated by id, with its days."""

    events: dict[bytes, tuple[bytes, Event]]
    days: set[int]


def _prepare(batch: Sequence[tuple[bytes, Event]]) -> _Prepared:
    """The batch by event id (a record twice in it is one event) and its days; raises
    :class:`PoisonRecord` for an event time no day can be made of."""
    events: dict[bytes, tuple[bytes, Event]] = {}
    days: set[int] = set()
    for raw, event in batch:
        try:
            days.add(day_of(event.at))
        except (ValueError, OverflowError, OSError) as exc:
            raise PoisonRecord(f"event time {event.at!r} is out of range: {exc}") from exc
        events.setdefault(event_id(raw), (raw, event))
    return _Prepared(events, days)


async def write_batch(db: Database, batch: Sequence[tuple[bytes, Event]]) -> WriteResult:
    """Store ``batch`` (each event with its record bytes) in one transaction; see the
    module docstring."""
    if not batch:
        return WriteResult(0, 0, 0, 0.0)
    prepared = _prepare(batch)
    try:
        await partitions.ensure(db, prepared.days)
        async with db.transaction() as tx:
            written, messages = await _write(tx, prepared)
    except StoreUnavailable:
        raise
    except StoreError as exc:
        if _transient(exc):
            raise StoreUnavailable(str(exc)) from exc
        raise
    return WriteResult(
        written=written,
        duplicates=len(batch) - written,
        messages=messages,
        newest_at=max(event.at for _, event in batch),
    )


async def _write(tx: Executor, prepared: _Prepared) -> tuple[int, int]:
    """Steps 1 to 4 of the module docstring; the events and messages inserted."""
    accepted = [e for _, e in prepared.events.values() if e.kind is EventKind.ACCEPTED]
    known = {e.message_id: own_origin(e) for e in accepted if e.message_id}
    wanted = {
        e.message_id
        for _, e in prepared.events.values()
        if needs_origin(e) and e.message_id not in known
    }
    known |= await origins(tx, wanted)
    origin: dict[bytes, Origin] = {
        key: merged(own_origin(e), known.get(e.message_id) if needs_origin(e) else None)
        for key, (_, e) in prepared.events.items()
    }
    rows = [event_row(raw, e, origin[key]) for key, (raw, e) in prepared.events.items()]
    new = await _insert(tx, "events", EVENT_COLUMNS, rows, "ON CONFLICT DO NOTHING RETURNING id")
    fresh = {bytes(r["id"]) for r in new}
    message_rows = [message_row(e) for e in accepted if e.message_id]
    inserted = await _insert(
        tx, "messages", MESSAGE_COLUMNS, message_rows, "ON CONFLICT DO NOTHING RETURNING day"
    )
    rollups = Rollups()
    for key in fresh:
        rollups.add(prepared.events[key][1], origin[key])
    await _upsert(tx, "rollup_hourly", _HOURLY_KEY, HOURLY_COUNTERS, rollups.hourly_rows())
    await _upsert(tx, "rollup_reasons", _REASON_KEY, ("count",), rollups.reason_rows())
    await _upsert(tx, "rollup_domains", _DOMAIN_KEY, DOMAIN_COUNTERS, rollups.domain_rows())
    return len(fresh), len(inserted)


async def origins(db: Executor, message_ids: Iterable[str]) -> dict[str, Origin]:
    """The origin of each of ``message_ids`` that has a ``messages`` row."""
    ids = sorted(set(message_ids))
    if not ids:
        return {}
    arg: list[str] | str
    if db.dialect == "postgres":
        where, arg = "message_id = ANY($1::text[])", ids
    else:  # one parameter whatever the count: SQLite limits a statement's parameters
        where, arg = "message_id IN (SELECT value FROM json_each($1))", json.dumps(ids)
    rows = await db.fetch(
        f"SELECT message_id, tenant, sender, campaign FROM messages WHERE {where}", arg
    )
    return {
        r["message_id"]: Origin(tenant=r["tenant"], sender=r["sender"], campaign=r["campaign"])
        for r in rows
    }


def _insert_sql(dialect: str, table: str, columns: Sequence[str], tail: str) -> str:
    names = ", ".join(columns)
    if dialect == "postgres":
        arrays = ", ".join(f"${n}::{_PG_TYPES.get(c, 'text')}[]" for n, c in enumerate(columns, 1))
        return f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {tail}"
    values = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    return f"INSERT INTO {table} ({names}) VALUES ({values}) {tail}"


async def _insert(
    tx: Executor, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]], tail: str
) -> list[dict[str, Any]]:
    """Insert ``rows``; what ``tail``'s RETURNING gives back."""
    if not rows:
        return []
    sql = _insert_sql(tx.dialect, table, columns, tail)
    if tx.dialect == "postgres":
        return await tx.fetch(sql, *(list(column) for column in zip(*rows, strict=True)))
    return await tx.executemany_returning(sql, rows)


async def _upsert(
    tx: Executor,
    table: str,
    key: Sequence[str],
    counters: Sequence[str],
    rows: list[tuple[Any, ...]],
) -> None:
    """Add ``rows`` (key columns, then counters) to ``table``'s counters."""
    if not rows:
        return
    conflict = ", ".join(c for c in key if c != "day")  # day follows hour: not in the key
    adds = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counters)
    sql = _insert_sql(
        tx.dialect, table, (*key, *counters), f"ON CONFLICT ({conflict}) DO UPDATE SET {adds}"
    )
    if tx.dialect == "postgres":
        await tx.execute(sql, *(list(column) for column in zip(*rows, strict=True)))
    else:
        await tx.executemany(sql, rows)


def _transient(exc: StoreError) -> bool:
    """Whether the database refused for its own state (see :data:`_TRANSIENT`)."""
    state = str(getattr(exc.__cause__, "sqlstate", "") or "")
    return bool(state) and state.startswith(_TRANSIENT)
