"""The store's schema migrations on a real SQLite file (PostgreSQL: test_migrate_postgres)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import SchemaTooNew, StoreError
from shared.store.db import open_database
from shared.store.migrate import LATEST, check_schema, migrate, migrations, split_statements


async def test_an_empty_database_gets_every_version_once(tmp_path: Path) -> None:
    db = await open_database(f"sqlite:///{tmp_path}/store.sqlite3")
    try:
        assert await migrate(db, now=100.0) == list(range(1, LATEST + 1))
        assert await migrate(db, now=200.0) == []
        rows = await db.fetch("SELECT version, applied_at FROM store_migrations ORDER BY version")
        assert [(r["version"], r["applied_at"]) for r in rows] == [
            (v, 100.0) for v in range(1, LATEST + 1)
        ]
        # The tables the writer and the queries use exist.
        for table in ("events", "messages", "rollup_hourly", "rollup_reasons", "erasures"):
            assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0
    finally:
        await db.close()


async def test_a_schema_from_a_newer_postline_is_refused(tmp_path: Path) -> None:
    db = await open_database(f"sqlite:///{tmp_path}/store.sqlite3")
    try:
        await migrate(db, now=1.0)
        await db.execute(
            "INSERT INTO store_migrations (version, name, applied_at) VALUES ($1, 'future', 2)",
            LATEST + 1,
        )
        with pytest.raises(SchemaTooNew, match=f"version {LATEST + 1}.*up to {LATEST}"):
            await check_schema(db)
        with pytest.raises(SchemaTooNew):
            await migrate(db, now=3.0)
    finally:
        await db.close()


def test_both_dialects_have_the_same_versions() -> None:
    pg, lite = migrations("postgres"), migrations("sqlite")
    assert [(m.version, m.name) for m in pg] == [(m.version, m.name) for m in lite]
    assert len(pg) == LATEST


def test_statements_are_split_at_their_ends_and_comments_dropped() -> None:
    sql = "-- a comment; not a statement\nCREATE TABLE a (x int);\n\nCREATE INDEX i\n ON a (x);\n"
    assert split_statements(sql) == ("CREATE TABLE a (x int)", "CREATE INDEX i\n ON a (x)")
    with pytest.raises(StoreError, match="inside a statement"):
        split_statements("CREATE TABLE b (y int")
