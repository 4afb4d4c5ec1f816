"""One small async database interface over PostgreSQL (asyncpg) and SQLite (the stdlib).

The store's SQL is written once, with PostgreSQL's ``$1, $2`` placeholders; the SQLite side
rewrites them to its numbered ``?1, ?2`` form, which binds the same way. The few statements
that differ (partitions, arrays, ``COPY``) look at :attr:`Database.dialect`.

SQLite runs on one connection in one worker thread: every call is a hop to that thread, and a
transaction holds the connection (an asyncio lock) until it ends, so statements from other
tasks wait for it instead of landing inside it. That is the embedded bus's trade-off too: one
process, one writer.

Library errors never leave this module: a connection that cannot be made or is lost, or a
deadline missed, is :class:`~shared.errors.StoreUnavailable` (try again later); anything else
the database refuses is :class:`~shared.errors.StoreError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from shared.errors import StoreError, StoreInvalid, StoreUnavailable
from shared.worker_thread import WorkerThread

if TYPE_CHECKING:
    import asyncpg

__all__ = ["Database", "Dialect", "Executor", "open_database", "redact"]

Dialect = Literal["postgres", "sqlite"]
Row = dict[str, Any]
T = TypeVar("T")

_PLACEHOLDER = re.compile(r"\$(\d+)")
#: How long a statement may take before the database counts as unavailable.
DEFAULT_TIMEOUT = 30.0


class Executor(Protocol):
    """What runs statements: the :class:`Database` itself, or one of its transactions."""

    dialect: Dialect

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """The statement's rows, each a dict of column name to value."""
        ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """The first row, or ``None``."""
        ...

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """The first column of the first row, or ``None``."""
        ...

    async def execute(self, sql: str, *args: Any) -> None:
        """Run a statement whose rows (if any) are not wanted."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per row of arguments."""
        ...

    async def executemany_returning(self, sql: str, rows: Iterable[Sequence[Any]]) -> list[Row]:
        """Run an ``INSERT ... RETURNING`` once per row; the rows it returned, in order."""
        ...


class Database(Executor, Protocol):
    """A connection pool (PostgreSQL) or the one connection (SQLite) to the store."""

    url: str

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Executor]:
        """``async with db.transaction() as tx:`` — committed when the block ends, rolled
        back when it raises."""
        ...

    async def close(self) -> None:
        """Close every connection; the object is unusable after."""
        ...


def redact(url: str) -> str:
    """``url`` with its password replaced, for logs and error messages."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


async def open_database(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> Database:
    """Connect to the store at ``url``: ``postgresql://...`` (or ``postgres://``) or
    ``sqlite:///absolute/path`` / ``sqlite:relative/path``.

    Raises :class:`StoreInvalid` for a URL of another kind and :class:`StoreUnavailable`
    when the database cannot be reached.
    """
    if url.startswith(("postgresql://", "postgres://")):
        return await _PostgresDatabase.connect(url, timeout)
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:")
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise StoreInvalid(f"store url {url!r} names no file")
        return await _SqliteDatabase.connect(url, Path(path), timeout)
    raise StoreInvalid(f"store url {redact(url)!r} is neither postgresql://... nor sqlite:///path")


# ------------------------------------------------------------------ PostgreSQL ----


def _pg_errors() -> tuple[tuple[type[BaseException], ...], type[BaseException]]:
    import asyncpg  # noqa: PLC0415 (only a process that uses PostgreSQL loads it)

    unavailable: tuple[type[BaseException], ...] = (
        OSError,
        asyncio.TimeoutError,
        asyncpg.exceptions.PostgresConnectionError,
        asyncpg.exceptions.CannotConnectNowError,
        asyncpg.exceptions.TooManyConnectionsError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.CrashShutdownError,
        asyncpg.exceptions.InterfaceError,
    )
    return unavailable, asyncpg.exceptions.PostgresError


@contextlib.contextmanager
def _pg_mapped(url: str) -> Any:
    unavailable, refused = _pg_errors()
    try:
        yield
    except unavailable as exc:
        raise StoreUnavailable(f"PostgreSQL at {redact(url)}: {exc or type(exc).__name__}") from exc
    except refused as exc:
        raise StoreError(f"PostgreSQL refused a statement: {exc}") from exc


class _PgExecutor:
    dialect: Dialect = "postgres"

    def __init__(self, conn: asyncpg.Connection | asyncpg.Pool, url: str, timeout: float):
        self._conn = conn
        self._url = url
        self._timeout = timeout

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        with _pg_mapped(self._url):
            return [dict(r) for r in await self._conn.fetch(sql, *args, timeout=self._timeout)]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        with _pg_mapped(self._url):
            row = await self._conn.fetchrow(sql, *args, timeout=self._timeout)
        return None if row is None else dict(row)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        with _pg_mapped(self._url):
            return await self._conn.fetchval(sql, *args, timeout=self._timeout)

    async def execute(self, sql: str, *args: Any) -> None:
        with _pg_mapped(self._url):
            await self._conn.execute(sql, *args, timeout=self._timeout)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with _pg_mapped(self._url):
            await self._conn.executemany(sql, list(rows), timeout=self._timeout)

    async def executemany_returning(self, sql: str, rows: Iterable[Sequence[Any]]) -> list[Row]:
        out: list[Row] = []
        with _pg_mapped(self._url):
            for args in rows:
                found = await self._conn.fetch(sql, *args, timeout=self._timeout)
                out.extend(dict(r) for r in found)
        return out


class _PostgresDatabase(_PgExecutor):
    def __init__(self, pool: asyncpg.Pool, url: str, timeout: float) -> None:
        super().__init__(pool, url, timeout)
        self.url = url
        self._pool = pool

    @classmethod
    async def connect(cls, url: str, timeout: float) -> _PostgresDatabase:
        import asyncpg  # noqa: PLC0415

        with _pg_mapped(url):
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=8, timeout=timeout, command_timeout=timeout
            )
        return cls(pool, url, timeout)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        with _pg_mapped(self.url):
            async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
                yield _PgExecutor(conn, self.url, self._timeout)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._pool.close(), self._timeout)


# ---------------------------------------------------------------------- SQLite ----


def _sqlite_sql(sql: str) -> str:
    return _PLACEHOLDER.sub(r"?\1", sql)


def _rows(cursor: sqlite3.Cursor) -> list[Row]:
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class _SqliteExecutor:
    dialect: Dialect = "sqlite"

    def __init__(self, db: _SqliteDatabase) -> None:
        self._db = db

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        text = _sqlite_sql(sql)
        return await self._db.call(lambda c: _rows(c.execute(text, args)))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return None if row is None else next(iter(row.values()), None)

    async def execute(self, sql: str, *args: Any) -> None:
        text = _sqlite_sql(sql)
        await self._db.call(lambda c: c.execute(text, args))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        text, batch = _sqlite_sql(sql), list(rows)
        await self._db.call(lambda c: c.executemany(text, batch))

    async def executemany_returning(self, sql: str, rows: Iterable[Sequence[Any]]) -> list[Row]:
        text, batch = _sqlite_sql(sql), list(rows)

        def run(c: sqlite3.Connection) -> list[Row]:
            out: list[Row] = []
            for args in batch:
                out.extend(_rows(c.execute(text, args)))
            return out

        return await self._db.call(run)


class _SqliteDatabase(_SqliteExecutor):
    def __init__(self, url: str, conn: sqlite3.Connection, thread: WorkerThread) -> None:
        super().__init__(self)
        self.url = url
        self._conn = conn
        self._thread = thread
        self._lock = asyncio.Lock()
        self._in_transaction = False

    @classmethod
    async def connect(cls, url: str, path: Path, timeout: float) -> _SqliteDatabase:
        thread = WorkerThread("store-sqlite")

        def open_() -> sqlite3.Connection:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are the explicit BEGIN ... COMMIT below.
            conn = sqlite3.connect(
                path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # WAL with NORMAL: a power cut may lose the last transactions but never corrupts;
            # the stage's offsets are committed after ours, so lost rows are read again.
            conn.execute("PRAGMA synchronous=NORMAL")
            return conn

        try:
            conn = await thread.call(open_)
        except (OSError, sqlite3.Error) as exc:
            thread.stop()
            raise StoreUnavailable(f"SQLite store {path}: {exc}") from exc
        return cls(url, conn, thread)

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the connection in the store's thread (outside a transaction, wait
        for the one in progress)."""
        if self._in_transaction and self._lock.locked() and _owner_of(self._lock):
            return await self._run(fn)
        async with self._lock:
            return await self._run(fn)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        try:
            return await self._thread.call(lambda: fn(conn))
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc) or "disk" in str(exc):
                raise StoreUnavailable(f"SQLite store {self.url}: {exc}") from exc
            raise StoreError(f"SQLite refused a statement: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite refused a statement: {exc}") from exc

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        async with self._lock:
            _set_owner(self._lock)
            self._in_transaction = True
            try:
                await self._run(lambda c: c.execute("BEGIN IMMEDIATE"))
                try:
                    yield self
                except BaseException:
                    await self._run(lambda c: c.execute("ROLLBACK"))
                    raise
                await self._run(lambda c: c.execute("COMMIT"))
            finally:
                self._in_transaction = False
                _set_owner(self._lock, clear=True)

    async def close(self) -> None:
        async with self._lock:
            try:
                await self._thread.call(self._conn.close)
            finally:
                self._thread.stop()


# Which task holds a SQLite transaction: its own statements run inside it, everyone else's
# wait for the lock. Kept on the lock object itself, so there is no module state.
def _set_owner(lock: asyncio.Lock, *, clear: bool = False) -> None:
    lock._postline_owner = None if clear else asyncio.current_task()  # type: ignore[attr-defined]


def _owner_of(lock: asyncio.Lock) -> bool:
    return getattr(lock, "_postline_owner", None) is asyncio.current_task()
