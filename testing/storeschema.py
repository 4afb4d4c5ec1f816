"""The store schema of the spec, for the query tests until the migrations land (temporary)."""

from __future__ import annotations

from shared.store.db import Executor
from shared.store.reports import COUNTERS as _COUNTERS

_EVENTS = """(
  day int NOT NULL, id {blob} NOT NULL, at double precision NOT NULL, kind text NOT NULL,
  tenant text NOT NULL, message_id text NOT NULL, recipient text NOT NULL,
  recipient_domain text NOT NULL, sender text NOT NULL, sender_domain text NOT NULL,
  subject text NOT NULL, campaign text NOT NULL, tags text NOT NULL, provider text NOT NULL,
  mx text NOT NULL, classification text NOT NULL, reason text NOT NULL, code int NOT NULL,
  status text NOT NULL, detail text NOT NULL, machine boolean NOT NULL, agent text NOT NULL,
  url text NOT NULL, doc text NOT NULL, PRIMARY KEY (day, id))"""


_ROLLUPS = [
    "CREATE TABLE rollup_hourly (hour bigint NOT NULL, day int NOT NULL, tenant text NOT NULL, "
    "sender_domain text NOT NULL, campaign text NOT NULL, provider text NOT NULL, "
    + ", ".join(f"{c} bigint NOT NULL DEFAULT 0" for c in _COUNTERS)
    + ", PRIMARY KEY (hour, tenant, sender_domain, campaign, provider))",
    "CREATE TABLE rollup_reasons (hour bigint NOT NULL, day int NOT NULL, tenant text NOT NULL, "
    "campaign text NOT NULL, kind text NOT NULL, classification text NOT NULL, "
    "reason text NOT NULL, count bigint NOT NULL DEFAULT 0, "
    "PRIMARY KEY (hour, tenant, campaign, kind, classification, reason))",
    "CREATE TABLE rollup_domains (hour bigint NOT NULL, day int NOT NULL, tenant text NOT NULL, "
    "campaign text NOT NULL, recipient_domain text NOT NULL, delivered bigint NOT NULL "
    "DEFAULT 0, deferred bigint NOT NULL DEFAULT 0, bounced bigint NOT NULL DEFAULT 0, "
    "PRIMARY KEY (hour, tenant, campaign, recipient_domain))",
]

_INDEXES = [
    "CREATE INDEX events_message ON events (message_id)",
    "CREATE INDEX events_recipient ON events (recipient, at)",
    "CREATE INDEX events_sender ON events (tenant, sender, at)",
    "CREATE INDEX events_campaign ON events (tenant, campaign, at)",
    "CREATE INDEX events_kind ON events (tenant, kind, at)",
    "CREATE INDEX events_at ON events (at)",
]


async def create_schema(db: Executor, days: list[int]) -> None:
    """Create ``events`` and the rollups; on PostgreSQL one partition per day of ``days``."""
    if db.dialect == "postgres":
        await db.execute(
            "CREATE TABLE events " + _EVENTS.format(blob="bytea") + " PARTITION BY RANGE (day)"
        )
        for day in sorted(set(days)):
            await db.execute(
                f"CREATE TABLE events_p{day} PARTITION OF events "
                f"FOR VALUES FROM ({day}) TO ({day + 1})"
            )
    else:
        await db.execute("CREATE TABLE events " + _EVENTS.format(blob="blob"))
    for sql in _ROLLUPS + _INDEXES:
        await db.execute(sql)
    if db.dialect == "postgres":
        await db.execute("CREATE INDEX events_subject ON events (subject text_pattern_ops)")
