"""The reporting store in tests: a migrated database of either dialect, and events to put
in it with their record bytes.

    async with store_database("sqlite", tmp_path, None) as db: ...
    async with store_database("postgres", tmp_path, admin_dsn) as db: ...

SQLite is a file under the test's directory; PostgreSQL a fresh database of its own
(``testing.postgres``), dropped after.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from shared.store.db import Database, open_database
from shared.store.migrate import migrate
from shared.wire.records import Event, EventKind
from shared.wire.topics import EVENTS

#: A fixed time: 2026-12-07T10:00:00Z (tests never read the clock).
AT = 1796637600.0


@contextlib.asynccontextmanager
async def store_url(dialect: str, folder: Path, admin_dsn: str | None) -> AsyncIterator[str]:
    """The URL of an empty store database of ``dialect``."""
    if dialect == "sqlite":
        yield f"sqlite://{folder / 'store.sqlite3'}"
        return
    assert admin_dsn is not None
    from testing.postgres import fresh_database  # noqa: PLC0415 (asyncpg: PostgreSQL only)

    async with fresh_database(admin_dsn) as dsn:
        yield dsn


@contextlib.asynccontextmanager
async def store_database(url: str) -> AsyncIterator[Database]:
    """``url`` opened and migrated; closed after."""
    db = await open_database(url)
    try:
        await migrate(db, now=AT)
        yield db
    finally:
        await db.close()


def event(kind: EventKind, message_id: str, **fields: Any) -> tuple[bytes, Event]:
    """An event and its record bytes, as the store stage reads them off the topic."""
    record = Event(kind=kind, message_id=message_id, at=fields.pop("at", AT), **fields)
    return EVENTS.encode(record), record


async def count(db: Database, table: str, where: str = "TRUE", *args: Any) -> int:
    """Rows of ``table`` matching ``where``."""
    return int(await db.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args))


async def rollup(db: Database, column: str, where: str = "TRUE", *args: Any) -> int:
    """The sum of ``rollup_hourly.column`` over the rows matching ``where``."""
    sql = f"SELECT coalesce(sum({column}), 0) FROM rollup_hourly WHERE {where}"
    return int(await db.fetchval(sql, *args))
