"""Rows for the reporting store's query tests and benchmark, written with plain SQL.

The query layer (``shared.store.queries`` and its neighbours) is tested apart from the writer:
a test builds event rows with :func:`event_row` (every column of ``events`` with a default),
inserts them with :func:`insert_events` and fills the rollups from ``events`` with
:func:`rebuild_rollups`, one ``INSERT ... SELECT ... GROUP BY`` per rollup table, which counts
exactly what the spec's kind-to-counter table says. ``bench/store_queries.py`` fills its
rollups the same way after generating its events in SQL.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from shared.store.db import Executor
from shared.store.rows import EVENT_COLUMNS, day_of

# The events table's columns and the UTC day are the writer's own (shared.store.rows): the
# rows written here are the rows the writer would write.
utc_day = day_of


def event_row(
    *,
    at: float,
    kind: str,
    message_id: str,
    tenant: str = "shop",
    recipient: str = "",
    sender: str = "",
    subject: str = "",
    tags: dict[str, str] | None = None,
    provider: str = "",
    mx: str = "",
    classification: str = "",
    reason: str = "",
    code: int = 0,
    status: str = "",
    detail: str = "",
    machine: bool = False,
    agent: str = "",
    url: str = "",
) -> dict[str, Any]:
    """One ``events`` row; the id is derived from the other fields, so equal rows collide."""
    tags = tags or {}
    row: dict[str, Any] = {
        "at": float(at),
        "day": utc_day(at),
        "kind": kind,
        "tenant": tenant,
        "message_id": message_id,
        "recipient": recipient.lower(),
        "recipient_domain": recipient.rpartition("@")[2].lower(),
        "sender": sender.lower(),
        "sender_domain": sender.rpartition("@")[2].lower(),
        "subject": subject,
        "campaign": tags.get("campaign", ""),
        "tags": json.dumps(tags, sort_keys=True),
        "provider": provider,
        "mx": mx,
        "classification": classification,
        "reason": reason,
        "code": code,
        "status": status,
        "detail": detail,
        "machine": machine,
        "agent": agent,
        "url": url,
    }
    row["doc"] = json.dumps({k: row[k] for k in ("at", "kind", "message_id", "recipient")})
    row["id"] = hashlib.blake2b(json.dumps(row, sort_keys=True).encode(), digest_size=16).digest()
    return row


async def insert_events(db: Executor, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (from :func:`event_row`) into ``events``; a duplicate id is skipped."""
    names = ", ".join(EVENT_COLUMNS)
    marks = ", ".join(f"${n}" for n in range(1, len(EVENT_COLUMNS) + 1))
    await db.executemany(
        f"INSERT INTO events ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING",
        [tuple(row[c] for c in EVENT_COLUMNS) for row in rows],
    )


def _hour(db: Executor) -> str:
    # PostgreSQL's CAST rounds a double; SQLite's truncates (and may lack FLOOR).
    if db.dialect == "postgres":
        return "(FLOOR(at / 3600)::bigint * 3600)"
    return "(CAST(at / 3600 AS INTEGER) * 3600)"


def _day_start(db: Executor) -> str:
    if db.dialect == "postgres":
        return "(FLOOR(at / 86400)::bigint * 86400)"
    return "(CAST(at / 86400 AS INTEGER) * 86400)"


def _count(condition: str) -> str:
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


_HOURLY_COUNTERS = {
    "accepted": "kind = 'accepted'",
    "delivered": "kind = 'delivered'",
    "deferred": "kind = 'deferred'",
    "bounced": "kind = 'bounced'",
    "bounced_hard": "kind = 'bounced' AND classification = 'hard'",
    "bounced_soft": "kind = 'bounced' AND classification = 'soft'",
    "expired": "kind = 'expired'",
    "complained": "kind = 'complained'",
    "unsubscribed": "kind = 'unsubscribed'",
    "opened": "kind = 'opened' AND NOT machine",
    "opened_machine": "kind = 'opened' AND machine",
    "clicked": "kind = 'clicked' AND NOT machine",
    "clicked_machine": "kind = 'clicked' AND machine",
    "suppressed": "kind = 'suppressed'",
    "rejected": "kind = 'rejected'",
}


async def rebuild_rollups(db: Executor) -> None:
    """Empty the rollup tables and fill them again from every row of ``events``."""
    for table in (
        "rollup_hourly",
        "rollup_daily",
        "rollup_reasons",
        "rollup_domains",
        "rollup_tenant_domains",
    ):
        await db.execute(f"DELETE FROM {table}")
    hour, start = _hour(db), _day_start(db)
    counted = ", ".join(f"'{k}'" for k in ("delivered", "deferred", "bounced"))
    counters = ", ".join(_HOURLY_COUNTERS)
    sums = ", ".join(_count(cond) for cond in _HOURLY_COUNTERS.values())
    await db.execute(
        f"INSERT INTO rollup_hourly (hour, day, tenant, sender_domain, campaign, provider, "
        f"{counters}) SELECT {hour}, MIN(day), tenant, sender_domain, campaign, provider, "
        f"{sums} FROM events GROUP BY {hour}, tenant, sender_domain, campaign, provider"
    )
    # The daily counters are the hourly ones summed per day, as the writer keeps them.
    day_sums = ", ".join(f"SUM({c})" for c in _HOURLY_COUNTERS)
    await db.execute(
        f"INSERT INTO rollup_daily (day, day_start, tenant, sender_domain, campaign, provider, "
        f"{counters}) SELECT day, MIN(hour) - MIN(hour) % 86400, tenant, sender_domain, "
        f"campaign, provider, {day_sums} FROM rollup_hourly "
        f"GROUP BY day, tenant, sender_domain, campaign, provider"
    )
    await db.execute(
        f"INSERT INTO rollup_reasons (day, day_start, tenant, campaign, kind, classification, "
        f"reason, count) SELECT day, MIN({start}), tenant, campaign, kind, classification, "
        f"reason, COUNT(*) FROM events WHERE kind IN ('bounced', 'deferred', 'complained') "
        f"GROUP BY day, tenant, campaign, kind, classification, reason"
    )
    await db.execute(
        f"INSERT INTO rollup_domains (day, day_start, tenant, campaign, recipient_domain, "
        f"delivered, deferred, bounced) SELECT day, MIN({start}), tenant, campaign, "
        f"recipient_domain, {_count(_HOURLY_COUNTERS['delivered'])}, "
        f"{_count(_HOURLY_COUNTERS['deferred'])}, {_count(_HOURLY_COUNTERS['bounced'])} "
        f"FROM events WHERE kind IN ({counted}) GROUP BY day, tenant, campaign, recipient_domain"
    )
    await db.execute(
        "INSERT INTO rollup_tenant_domains (day, day_start, tenant, recipient_domain, delivered,"
        " deferred, bounced) SELECT day, MIN(day_start), tenant, recipient_domain,"
        " SUM(delivered), SUM(deferred), SUM(bounced) FROM rollup_domains"
        " GROUP BY day, tenant, recipient_domain"
    )
