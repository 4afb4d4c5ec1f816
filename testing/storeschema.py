"""A migrated store for the query tests and the benchmark, with its daily partitions."""

from __future__ import annotations

from shared.store.db import Database
from shared.store.migrate import migrate
from shared.store.partitions import ensure

#: When the test schema says it was migrated (no test depends on it).
MIGRATED_AT = 1796515200.0


async def create_schema(db: Database, days: list[int]) -> None:
    """Apply the migrations and make the partitions of ``days`` (yyyymmdd; PostgreSQL),
    as the store stage does before it writes."""
    await migrate(db, now=MIGRATED_AT)
    await ensure(db, days)
