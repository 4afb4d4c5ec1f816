"""pytest fixtures of a store database of each kind: a SQLite file and a fresh PostgreSQL
database (``postgres_db`` of tests/conftest.py), migrated, with the tests' day partitions.
A test package's conftest imports them:
``from testing.storefixtures import query_store, query_url``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.store.db import Database, open_database
from testing.storeschema import create_schema

#: The days the tests' events fall on (PostgreSQL needs their partitions): 2026-12-01..07.
DAYS = list(range(20261201, 20261208))


@pytest.fixture(params=["sqlite", "postgres"])
def query_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database: a SQLite file, or a PostgreSQL database of the test's."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    return str(request.getfixturevalue("postgres_db"))


@pytest.fixture
async def query_store(query_url: str) -> AsyncIterator[Database]:
    """An empty, migrated store on SQLite and on PostgreSQL."""
    db = await open_database(query_url)
    try:
        await create_schema(db, DAYS)
        yield db
    finally:
        await db.close()
