"""The store's days: daily partitions made ahead, expired ones dropped, shorter tenant
retention, and the rollups' expiry.

PostgreSQL: ``events`` and ``messages`` are range-partitioned on ``day`` (yyyymmdd); one
partition per UTC day, ``events_p20261207`` ``FOR VALUES FROM (20261207) TO (20261208)``,
made a few days ahead (and on demand by the writer for a day it meets first), and dropped
whole once expired: no row-by-row delete at scale. SQLite has no partitions: an expired day
is deleted by ``day``, the primary key's first column (the single-host trade-off).

A tenant whose retention is shorter than the longest one has its rows deleted by (tenant,
day) from the days still kept. Rollups expire with the events, by ``day``.

Every function takes the time as ``now`` (epoch seconds): nothing here reads the clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from shared.errors import StoreError
from shared.store.db import Database, Executor
from shared.store.rows import day_of

#: The partitioned tables.
PARTITIONED = ("events", "messages")
#: The tables deleted from by ``day`` (SQLite's events and messages, everyone's rollups).
ROLLUPS = ("rollup_hourly", "rollup_reasons", "rollup_domains")
_NAME = re.compile(r"^(events|messages)_p(\d{8})$")


def as_date(day: int) -> date:
    """The date of a yyyymmdd day."""
    return date(day // 10000, day // 100 % 100, day % 100)


def next_day(day: int) -> int:
    """The day after ``day`` (yyyymmdd, across months and years)."""
    d = as_date(day) + timedelta(days=1)
    return d.year * 10000 + d.month * 100 + d.day


def partition_name(table: str, day: int) -> str:
    """``events_p20261207``: ``table``'s partition for ``day``."""
    return f"{table}_p{day:08d}"


def upcoming(now: float, ahead: int) -> list[int]:
    """Today and the ``ahead`` days after it (UTC), as yyyymmdd."""
    today = datetime.fromtimestamp(now, UTC).date()
    days = (today + timedelta(days=n) for n in range(ahead + 1))
    return [d.year * 10000 + d.month * 100 + d.day for d in days]


def cutoff(now: float, retention_days: int) -> int:
    """The first day kept by a retention of ``retention_days`` days: older ones expire."""
    return day_of(now - retention_days * 86400)


async def existing(db: Executor) -> set[int]:
    """The days that have partitions (PostgreSQL) or rows (SQLite) in ``events``."""
    if db.dialect == "sqlite":
        rows = await db.fetch("SELECT DISTINCT day FROM events")
        return {int(r["day"]) for r in rows}
    rows = await db.fetch(
        "SELECT c.relname AS name FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
        " WHERE p.relname = 'events'"
    )
    return {int(m[2]) for r in rows if (m := _NAME.match(r["name"]))}


async def ensure(db: Database, days: Iterable[int]) -> list[int]:
    """Make the partitions of ``days`` that are missing (PostgreSQL; SQLite needs none); the
    days made. Each in its own short transaction, before the writes that need it: a replica
    making the same partition at the same moment makes one fail, which is checked again."""
    wanted = sorted(set(days))
    if db.dialect == "sqlite" or not wanted:
        return []
    have = await existing(db)
    made: list[int] = []
    for day in wanted:
        if day in have:
            continue
        try:
            async with db.transaction() as tx:
                for table in PARTITIONED:
                    await tx.execute(
                        f"CREATE TABLE IF NOT EXISTS {partition_name(table, day)}"
                        f" PARTITION OF {table} FOR VALUES FROM ({day}) TO ({next_day(day)})"
                    )
        except StoreError:
            if day not in await existing(db):  # not another replica's doing: a real failure
                raise
            continue
        made.append(day)
    return made


async def drop_before(db: Database, first_kept: int) -> list[int]:
    """Remove every day before ``first_kept`` (events, messages, rollups); the days removed."""
    gone = sorted(d for d in await existing(db) if d < first_kept)
    async with db.transaction() as tx:
        if db.dialect == "postgres":
            for day in gone:
                for table in PARTITIONED:
                    await tx.execute(f"DROP TABLE IF EXISTS {partition_name(table, day)}")
        else:
            for table in PARTITIONED:
                await tx.execute(f"DELETE FROM {table} WHERE day < $1", first_kept)
        for table in ROLLUPS:
            await tx.execute(f"DELETE FROM {table} WHERE day < $1", first_kept)
    return gone


async def expire_tenants(db: Database, tenants: Iterable[str], first_kept: int) -> None:
    """Delete the rows of ``tenants`` older than ``first_kept`` (a retention shorter than
    the partitions'): events, messages and rollups."""
    names = sorted(set(tenants))
    if not names:
        return
    async with db.transaction() as tx:
        for table in (*PARTITIONED, *ROLLUPS):
            for tenant in names:
                await tx.execute(
                    f"DELETE FROM {table} WHERE tenant = $1 AND day < $2", tenant, first_kept
                )


async def expire_others(db: Database, own: Iterable[str], first_kept: int) -> None:
    """Delete the rows older than ``first_kept`` of every tenant not in ``own`` (those on
    the store's default retention, when a tenant keeps its rows longer)."""
    names = sorted(set(own))
    marks = ", ".join(f"${n + 2}" for n in range(len(names))) or "NULL"
    async with db.transaction() as tx:
        for table in (*PARTITIONED, *ROLLUPS):
            # NOT IN (NULL) matches nothing, so an empty list is spelled "no other tenant".
            where = f"tenant NOT IN ({marks})" if names else "TRUE"
            await tx.execute(f"DELETE FROM {table} WHERE day < $1 AND {where}", first_kept, *names)


@dataclass(frozen=True)
class Retention:
    """What one retention pass did."""

    made: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    partitions: int = 0  # days held after the pass


async def run_retention(
    db: Database,
    *,
    now: float,
    default_days: int,
    tenant_days: Mapping[str, int] | None = None,
    ahead: int = 3,
) -> Retention:
    """One pass: make the coming days' partitions, drop the days past the longest
    retention, and delete what shorter retentions expire (``tenant_days``: a tenant's own
    retention in days, 0 or absent = ``default_days``)."""
    own = {t: d for t, d in (tenant_days or {}).items() if d > 0}
    longest = max([default_days, *own.values()])
    made = await ensure(db, upcoming(now, ahead))
    dropped = await drop_before(db, cutoff(now, longest))
    by_days: dict[int, list[str]] = {}
    for tenant, days in own.items():
        if days < longest:
            by_days.setdefault(days, []).append(tenant)
    for days, tenants in sorted(by_days.items()):
        await expire_tenants(db, tenants, cutoff(now, days))
    if default_days < longest:
        await expire_others(db, own, cutoff(now, default_days))
    return Retention(made, dropped, len(await existing(db)))
