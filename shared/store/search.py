"""Search the store's events: by recipient, sender, subject prefix, tag, status and time,
newest first, a page at a time.

A page ends with an opaque cursor, the ``(at, id)`` of its last event (keyset pagination):
the next page starts strictly after it, so it costs the same at page 1 and page 1000 and
never repeats or skips an event when new ones arrive meanwhile.

``status`` selects events of that kind (``bounced``: the bounce events), not "messages whose
latest state is": an event log answers the first with an index, the second needs every
event of every message in the range. The history of one message (``message_history``) tells
its current state. ``subject`` finds messages: the subject is on their ``accepted`` event
(the events after it do not repeat it), so a subject search returns ``accepted`` events.

Every search reads an index of the schema (``shared/store/migrations``): ``(recipient, at)``,
``(sender, at)``, the partial ``(subject) WHERE kind = 'accepted'`` (``COLLATE "C"``, so a
prefix is a range), ``(tenant, campaign, at)``, ``(tenant, kind, at)``, ``(tenant, at)``; the
time range also names the days, so PostgreSQL reads only those days' partitions. The
recipient, sender and subject indexes do not start with the tenant, so a tenant's search
filters the few rows of one address and the admin's (no tenant) is the same range. An admin
search by campaign, status or time alone on PostgreSQL runs once per tenant with events in
those days (found by a loose index scan of ``(tenant, at)``) and merges the branches, ordered
by ``at``, so it too reads indexes instead of every tenant's rows.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec

from shared.errors import StoreInvalid
from shared.store.db import Executor
from shared.store.queries import EVENT_FIELDS, StoredEvent, TimeRange, time_range, to_event
from shared.wire.records import EventKind

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
#: A tag that is not ``key=value`` is a campaign name (``tags["campaign"]``).
CAMPAIGN_TAG = "campaign"


class SearchQuery(msgspec.Struct, frozen=True, kw_only=True):
    """What to look for; empty fields do not filter. Addresses match whole (any case)."""

    recipient: str = ""
    sender: str = ""
    subject: str = ""  # a prefix of the subject, case-sensitive
    tag: str = ""  # "spring-sale" (a campaign) or "key=value"
    status: str = ""  # an event kind: delivered, bounced, opened, ...
    since: float | None = None  # epoch seconds; default: a day before until
    until: float | None = None  # epoch seconds, exclusive; default: now
    cursor: str = ""  # the previous page's next_cursor
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT


class SearchPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of events, newest first; ``next_cursor`` is ``None`` on the last page."""

    events: list[StoredEvent]
    next_cursor: str | None
    since: float
    until: float


def encode_cursor(at: float, event_id: str) -> str:
    """The opaque cursor after the event ``(at, event_id)``."""
    raw = json.dumps([at, event_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, bytes]:
    """``(at, id bytes)`` of a cursor; :class:`StoreInvalid` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, event_id = json.loads(raw)
        key = bytes.fromhex(event_id)
        if not isinstance(at, int | float) or len(key) != 16:
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise StoreInvalid(f"not a cursor of this search: {cursor!r}") from exc
    return float(at), key


class _Sql:
    """A WHERE clause and its ``$n`` arguments, built one condition at a time."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.args: list[Any] = []

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, condition: str) -> None:
        self.conditions.append(condition)


def _filters(sql: _Sql, query: SearchQuery, span: TimeRange, dialect: str) -> None:
    first, last = span.days
    # The days and times as literals (numbers we computed or parsed, never text): the
    # planner sees the partitions and the range's size even in a generic plan (see
    # custom_plans for the rest).
    sql.add(f"day BETWEEN {int(first)} AND {int(last)}")
    sql.add(f"at >= {_number(span.since)} AND at < {_number(span.until)}")
    if query.recipient:
        sql.add(f"recipient = {sql.arg(query.recipient.strip().lower())}")
    if query.sender:
        sql.add(f"sender = {sql.arg(query.sender.strip().lower())}")
    if query.subject:
        _subject(sql, query.subject)
    if query.tag:
        _tag(sql, query.tag, dialect)
    if query.status:
        if query.status not in EventKind._value2member_map_:
            known = ", ".join(k.value for k in EventKind)
            raise StoreInvalid(f"status {query.status!r} is not an event kind ({known})")
        sql.add(f"kind = {sql.arg(query.status)}")
    if query.cursor:
        at, key = decode_cursor(query.cursor)
        # at bounded on its own too, so the index range ends there (not only a filter).
        sql.add(f"at <= {_number(at)} AND (at < {_number(at)} OR id < {sql.arg(key)})")


def _number(value: float) -> str:
    """A finite float as an SQL literal (``repr`` round-trips it exactly)."""
    if not math.isfinite(value):
        raise StoreInvalid(f"not a finite time: {value}")
    return repr(float(value))


def _subject(sql: _Sql, prefix: str) -> None:
    # Byte-order bounds: SQLite's BINARY collation and PostgreSQL's "C" (the subject
    # column's) both compare UTF-8 bytes, which order like code points. The kind matches the
    # partial index's predicate, so the planner may use it.
    if ord(prefix[-1]) >= 0x10FFFF:
        raise StoreInvalid("the subject prefix ends in an unusable character")
    low, high = sql.arg(prefix), sql.arg(prefix[:-1] + chr(ord(prefix[-1]) + 1))
    sql.add(f"kind = 'accepted' AND subject >= {low} AND subject < {high}")


def _tag(sql: _Sql, tag: str, dialect: str) -> None:
    key, sep, value = tag.partition("=")
    if not sep:
        key, value = CAMPAIGN_TAG, tag
    key, value = key.strip(), value.strip()
    if not key:
        raise StoreInvalid(f"tag {tag!r} is neither a campaign nor key=value")
    if key == CAMPAIGN_TAG:
        sql.add(f"campaign = {sql.arg(value)}")
    elif dialect == "postgres":
        sql.add(f"(tags::jsonb ->> {sql.arg(key)}) = {sql.arg(value)}")
    else:
        path = "$." + json.dumps(key)  # $."key": any characters in the key
        sql.add(f"json_extract(tags, {sql.arg(path)}) = {sql.arg(value)}")


@contextlib.asynccontextmanager
async def custom_plans(db: Executor) -> AsyncIterator[Executor]:
    """``db``, planning each statement for its own values on PostgreSQL.

    asyncpg prepares every statement, and after five runs of one PostgreSQL may keep a
    generic plan made without the values: it guesses a sender has a few events, so for a
    busy sender it reads all of the day's events and sorts them (102 ms at 10 million
    events) instead of walking the index backwards to the first page (0.2 ms). A search is
    planned in well under a millisecond, so it is always planned for its values: ``SET
    LOCAL`` in a transaction of its own (a read: nothing to commit).
    """
    begin = getattr(db, "transaction", None)
    if db.dialect != "postgres" or begin is None:
        yield db
        return
    async with begin() as tx:
        await tx.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        yield tx


async def _tenants(db: Executor, span: TimeRange) -> list[str]:
    """The tenants with events in the range's days: a loose index scan of ``(tenant, at)``
    (one probe per tenant and day) instead of reading every row for the distinct values."""
    first, last = span.days
    days = f"day BETWEEN {int(first)} AND {int(last)}"  # literals: see _filters
    rows = await db.fetch(
        "WITH RECURSIVE t(tenant) AS ("
        f" (SELECT tenant FROM events WHERE {days} ORDER BY tenant LIMIT 1)"
        f" UNION ALL SELECT (SELECT e.tenant FROM events e WHERE e.{days}"
        " AND e.tenant > t.tenant ORDER BY e.tenant LIMIT 1) FROM t WHERE t.tenant IS NOT NULL"
        ") SELECT tenant FROM t WHERE tenant IS NOT NULL"
    )
    return [r["tenant"] for r in rows]


async def search_events(
    db: Executor, query: SearchQuery, tenant: str | None, *, now: float
) -> SearchPage:
    """One page of the events ``query`` selects, newest first, of ``tenant`` (``None``: every
    tenant's, the admin's view). ``now`` (the caller's clock) ends the default range.

    Raises :class:`StoreInvalid` for a bad range, status, tag or cursor.
    """
    if not 1 <= query.limit <= MAX_LIMIT:
        raise StoreInvalid(f"limit must be between 1 and {MAX_LIMIT}, not {query.limit}")
    span = time_range(query.since, query.until, now)
    sql = _Sql()
    _filters(sql, query, span, db.dialect)
    order = f"ORDER BY at DESC, id DESC LIMIT {query.limit + 1}"
    where = " AND ".join(sql.conditions)
    if tenant is not None:
        scoped = f"tenant = {sql.arg(tenant)} AND {where}"
        text = f"SELECT {EVENT_FIELDS} FROM events WHERE {scoped} {order}"
    elif db.dialect == "postgres" and not (query.recipient or query.sender or query.subject):
        tenants = await _tenants(db, span)
        if not tenants:
            return SearchPage(events=[], next_cursor=None, since=span.since, until=span.until)
        branches = [
            f"(SELECT {EVENT_FIELDS} FROM events WHERE tenant = {sql.arg(t)} AND {where} {order})"
            for t in tenants
        ]
        text = " UNION ALL ".join(branches) + f" {order}"
    else:
        text = f"SELECT {EVENT_FIELDS} FROM events WHERE {where} {order}"
    async with custom_plans(db) as executor:
        rows = await executor.fetch(text, *sql.args)
    events = [to_event(r) for r in rows[: query.limit]]
    more = len(rows) > query.limit
    cursor = encode_cursor(events[-1].at, events[-1].id) if more and events else None
    return SearchPage(events=events, next_cursor=cursor, since=span.since, until=span.until)
