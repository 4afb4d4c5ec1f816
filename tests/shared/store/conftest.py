"""Every store test runs on SQLite and on the real PostgreSQL (skipped without it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.store.db import Database
from testing.store import store_database, store_url


@pytest.fixture(params=["sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty store database, of each dialect in turn."""
    admin = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else None
    async with store_url(request.param, tmp_path, admin) as found:
        yield found


@pytest.fixture
async def db(url: str) -> AsyncIterator[Database]:
    """The store at ``url``, migrated."""
    async with store_database(url) as database:
        yield database
