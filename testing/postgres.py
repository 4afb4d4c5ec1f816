"""A database of its own for each test on the real PostgreSQL of ``deploy/local/postgres.sh``.

Tests share one server (``make test`` starts it; ``POSTLINE_TEST_POSTGRES`` is its admin DSN)
but never a database: :func:`fresh_database` creates one with a unique name, yields its DSN
and drops it afterwards, whatever the test left connected to it.

    async with fresh_database(admin_dsn) as dsn:
        db = await open_database(dsn)

The ``postgres_db`` fixture in ``tests/conftest.py`` is this, once per test.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

#: Seconds to wait for the server when creating or dropping a database.
TIMEOUT = 30.0
#: Every database made here starts with this, so a leftover one is recognisable as a test's.
PREFIX = "postline_test_"


def database_dsn(admin_dsn: str, name: str) -> str:
    """``admin_dsn`` with its database replaced by ``name`` (user, host, port and query kept)."""
    parts = urlsplit(admin_dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


def unique_name() -> str:
    """A new database name: lower-case, unquoted-identifier safe, well under 63 bytes."""
    return f"{PREFIX}{uuid.uuid4().hex}"


async def _admin(admin_dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(admin_dsn, timeout=TIMEOUT)
    try:
        await connection.execute(statement, timeout=TIMEOUT)
    finally:
        await connection.close(timeout=TIMEOUT)


@contextlib.asynccontextmanager
async def fresh_database(admin_dsn: str) -> AsyncIterator[str]:
    """Create an empty database on the server of ``admin_dsn`` (a role allowed to CREATE
    DATABASE), yield its DSN, then drop it. ``WITH (FORCE)`` ends the sessions a test left
    open (an unclosed pool), which a plain DROP DATABASE would wait on and then refuse."""
    name = unique_name()
    # CREATE/DROP DATABASE take no parameters; the name is ours (hex), so quoting is enough.
    await _admin(admin_dsn, f'CREATE DATABASE "{name}"')
    try:
        yield database_dsn(admin_dsn, name)
    finally:
        await _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
