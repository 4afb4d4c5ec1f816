"""A migrated store for the query tests and the benchmark, with its daily partitions."""

from __future__ import annotations

from shared.store.db import Database
from shared.store.migrate import migrate

#: When the test schema says it was migrated (no test depends on it).
MIGRATED_AT = 1796515200.0


async def create_schema(db: Database, days: list[int]) -> None:
    """Apply the migrations; on PostgreSQL add a partition of ``events`` and ``messages`` for
    each day of ``days`` (yyyymmdd), named as the store's partitions are."""
    await migrate(db, now=MIGRATED_AT)
    if db.dialect != "postgres":
        return
    for day in sorted(set(days)):
        for table in ("events", "messages"):
            await db.execute(
                f"CREATE TABLE IF NOT EXISTS {table}_p{day} PARTITION OF {table} "
                f"FOR VALUES FROM ({day}) TO ({day + 1})"
            )
