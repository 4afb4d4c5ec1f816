"""testing/postgres.py on the real PostgreSQL: each test's database is its own, empty, usable
by the store's own driver, and gone afterwards, even with a session still open on it."""

from __future__ import annotations

import asyncpg
import pytest

from testing.postgres import PREFIX, database_dsn, fresh_database

pytestmark = pytest.mark.postgres


async def _names(admin_dsn: str) -> set[str]:
    connection = await asyncpg.connect(admin_dsn)
    try:
        rows = await connection.fetch("SELECT datname FROM pg_database")
    finally:
        await connection.close()
    return {row["datname"] for row in rows}


async def test_the_fixture_gives_an_empty_working_database(postgres_db: str) -> None:
    connection = await asyncpg.connect(postgres_db)
    try:
        name = await connection.fetchval("SELECT current_database()")
        tables = await connection.fetchval(
            "SELECT count(*) FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
        await connection.execute("CREATE TABLE t (id int PRIMARY KEY, name text)")
        await connection.executemany("INSERT INTO t VALUES ($1, $2)", [(1, "a"), (2, "b")])
        rows = await connection.fetch("SELECT id, name FROM t ORDER BY id")
    finally:
        await connection.close()
    assert name.startswith(PREFIX)
    assert tables == 0
    assert [tuple(row) for row in rows] == [(1, "a"), (2, "b")]


async def test_databases_are_isolated_and_dropped_after(postgres_dsn: str) -> None:
    async with fresh_database(postgres_dsn) as first, fresh_database(postgres_dsn) as second:
        assert first != second
        one = await asyncpg.connect(first)
        two = await asyncpg.connect(second)
        try:
            await one.execute("CREATE TABLE only_here (x int)")
            seen = await two.fetchval("SELECT to_regclass('only_here') IS NOT NULL")
            # Left open on purpose, as a test's unclosed pool would be: the drop must end it.
            await two.execute("CREATE TABLE kept_open (x int)")
        finally:
            await one.close()
        made = {first.rsplit("/", 1)[1], second.rsplit("/", 1)[1]}
        assert made <= await _names(postgres_dsn)
    assert seen is False
    assert two.is_closed() or not await _alive(two)
    assert made.isdisjoint(await _names(postgres_dsn))


async def _alive(connection: asyncpg.Connection) -> bool:
    try:
        await connection.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    finally:
        await connection.close()
    return True


def test_database_dsn_keeps_everything_but_the_database() -> None:
    dsn = "postgresql://postline:pw@127.0.0.1:25432/postline?sslmode=disable"
    assert database_dsn(dsn, "other") == (
        "postgresql://postline:pw@127.0.0.1:25432/other?sslmode=disable"
    )
    assert database_dsn("postgresql://h:1", "x") == "postgresql://h:1/x"
