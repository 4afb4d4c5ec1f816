"""What the store answers about messages: the typed results, and a message's history.

The query layer of the reporting store, shared by the CLI (``postline message``,
``postline report``) and the store's HTTP API (``services/store/api.py``). Three modules:

- this one: the result types, the rules every query shares (tenant scoping, time ranges) and
  :func:`message_history` (every event of one message, by id or unique id prefix);
- ``search.py``: :func:`~shared.store.search.search_events`, keyset-paginated;
- ``reports.py``: :func:`~shared.store.reports.tenant_report`, from the rollup tables;
  ``csvout.py`` writes both as CSV.

Tenant scoping lives here, not in the callers: every query takes ``tenant: str | None`` and
``None`` (the admin) is the only way to see more than one tenant's rows. Every query is
served by an index of the schema (``shared/store/migrations``): docs/store-queries.md lists
which, with the latencies measured at 10 million events. Nothing here writes.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

import msgspec

from shared.errors import StoreInvalid
from shared.store.db import Executor

#: A message id is 32 hex digits (``shared.wire.records.new_id``); a prefix needs this many.
MIN_PREFIX = 8
#: The default time range of a search or report that names none: the last day.
DEFAULT_RANGE = 86400.0
#: The candidates an ambiguous prefix lists.
MAX_CANDIDATES = 10

_HEX = re.compile(r"^[0-9a-f]+$")

#: The columns a query reads for one event (everything but ``day`` and ``doc``).
EVENT_FIELDS = (
    "id, at, kind, tenant, message_id, recipient, sender, subject, campaign, tags, provider, "
    "mx, classification, reason, code, status, detail, machine, agent, url"
)


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One event as the store holds it (``events`` minus the raw ``doc``)."""

    id: str  # the event id: 32 hex digits (BLAKE2b-128 of the record)
    at: float  # epoch seconds
    kind: str
    tenant: str
    message_id: str
    recipient: str = ""
    sender: str = ""
    subject: str = ""
    campaign: str = ""
    tags: dict[str, str] = {}
    provider: str = ""
    mx: str = ""
    classification: str = ""
    reason: str = ""
    code: int = 0  # the SMTP reply code; 0: none
    status: str = ""  # the enhanced status code; "": none
    detail: str = ""
    machine: bool = False  # an open or click made by a machine (a scanner, a proxy)
    agent: str = ""
    url: str = ""


class MessageHistory(msgspec.Struct, frozen=True, kw_only=True):
    """Every event of one message, oldest first."""

    message_id: str
    events: list[StoredEvent]


class TimeRange(msgspec.Struct, frozen=True):
    """``[since, until)`` in epoch seconds."""

    since: float
    until: float

    @property
    def days(self) -> tuple[int, int]:
        """The first and last UTC day (yyyymmdd) the range touches: the partitions to read."""
        return utc_day(self.since), utc_day(max(self.since, self.until - 1e-6))


def utc_day(at: float) -> int:
    """The UTC day of ``at`` as the integer yyyymmdd (the ``day`` column)."""
    tm = time.gmtime(at)
    return tm.tm_year * 10000 + tm.tm_mon * 100 + tm.tm_mday


def time_range(since: float | None, until: float | None, now: float) -> TimeRange:
    """The range a query covers: ``until`` defaults to ``now``, ``since`` to one day before
    ``until``; :class:`StoreInvalid` when it is empty or reversed."""
    end = now if until is None else until
    start = end - DEFAULT_RANGE if since is None else since
    if not (math.isfinite(start) and math.isfinite(end)):
        raise StoreInvalid(f"the time range [{start}, {end}) is not finite")
    if start >= end:
        raise StoreInvalid(f"the time range is empty: since {start} is not before until {end}")
    if start < 0:
        raise StoreInvalid(f"since {start} is before 1970")
    return TimeRange(start, end)


def to_event(row: dict[str, Any]) -> StoredEvent:
    """A row of ``EVENT_FIELDS`` as a :class:`StoredEvent`."""
    try:
        tags = json.loads(row["tags"]) if row["tags"] else {}
    except ValueError:
        tags = {}
    return StoredEvent(
        id=bytes(row["id"]).hex(),
        at=float(row["at"]),
        kind=row["kind"],
        tenant=row["tenant"],
        message_id=row["message_id"],
        recipient=row["recipient"],
        sender=row["sender"],
        subject=row["subject"],
        campaign=row["campaign"],
        tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
        provider=row["provider"],
        mx=row["mx"],
        classification=row["classification"],
        reason=row["reason"],
        code=int(row["code"]),
        status=row["status"],
        detail=row["detail"],
        machine=bool(row["machine"]),
        agent=row["agent"],
        url=row["url"],
    )


def prefix_bounds(prefix: str) -> tuple[str, str]:
    """``[low, high)`` holding exactly the ids that start with ``prefix`` (lower-case hex):
    a range an index on ``message_id`` answers in either dialect, where ``LIKE`` depends on
    the collation (PostgreSQL) or the case rules (SQLite). The last digit's successor stays
    a letter or digit (``9`` -> ``a``, ``f`` -> ``g``): a linguistic collation (en_US) skips
    punctuation such as ``:`` at its first level, so ``9``'s code-point successor would not
    bound the range there."""
    last = prefix[-1]
    successor = "a" if last == "9" else chr(ord(last) + 1)
    return prefix, prefix[:-1] + successor


async def resolve_message_id(db: Executor, given: str, tenant: str | None) -> str | None:
    """The message id ``given`` names: itself when the store has it, else the one id that
    starts with it (at least :data:`MIN_PREFIX` hex digits); ``None`` when none does.

    Raises :class:`StoreInvalid` for a malformed id or a prefix several messages share
    (the message lists up to :data:`MAX_CANDIDATES` of them).
    """
    wanted = given.strip().lower()
    if not _HEX.match(wanted):
        raise StoreInvalid(f"a message id is hex digits, not {given!r}")
    scope, args = tenant_clause(tenant, 3)
    low, high = prefix_bounds(wanted)
    rows = await db.fetch(
        f"SELECT DISTINCT message_id FROM events WHERE message_id >= $1 AND message_id < $2"
        f"{scope} ORDER BY message_id LIMIT {MAX_CANDIDATES + 1}",
        low,
        high,
        *args,
    )
    found = [r["message_id"] for r in rows]
    if wanted in found:
        return wanted
    if len(wanted) < MIN_PREFIX:
        raise StoreInvalid(
            f"{given!r} is not a message id; a prefix needs at least {MIN_PREFIX} hex digits"
        )
    if len(found) > 1:
        listed = ", ".join(found[:MAX_CANDIDATES])
        more = " (and more)" if len(found) > MAX_CANDIDATES else ""
        raise StoreInvalid(f"{given!r} is the prefix of several messages: {listed}{more}")
    return found[0] if found else None


def tenant_clause(tenant: str | None, index: int) -> tuple[str, list[Any]]:
    """`` AND tenant = $index`` and its argument for a tenant; nothing for the admin."""
    if tenant is None:
        return "", []
    return f" AND tenant = ${index}", [tenant]


async def message_history(db: Executor, given: str, tenant: str | None) -> MessageHistory | None:
    """Every event of the message ``given`` names (an id or a unique prefix), oldest first;
    ``None`` when the store has none (or only another tenant's: a tenant cannot tell
    whether a message of someone else's exists)."""
    message_id = await resolve_message_id(db, given, tenant)
    if message_id is None:
        return None
    scope, args = tenant_clause(tenant, 2)
    rows = await db.fetch(
        f"SELECT {EVENT_FIELDS} FROM events WHERE message_id = $1{scope} ORDER BY at, id",
        message_id,
        *args,
    )
    if not rows:
        return None
    return MessageHistory(message_id=message_id, events=[to_event(r) for r in rows])
