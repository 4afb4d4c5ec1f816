"""The store's schema, as numbered migrations applied in order (``migrations/<dialect>/``).

Each file ``NNNN_name.sql`` is one version; both dialects have the same numbers. The table
``store_migrations`` records what was applied. :func:`migrate` applies what is missing, each
version in its own transaction (PostgreSQL takes an advisory lock first, so replicas starting
together apply a version once); :func:`check_schema` refuses a database that a newer Postline
migrated (:class:`~shared.errors.SchemaTooNew`), since this code could not read what that one
writes.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

from shared.errors import SchemaTooNew, StoreError
from shared.store.db import Database, Dialect

__all__ = ["LATEST", "Migration", "applied_version", "check_schema", "migrate", "migrations"]

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
#: Any 64-bit number both replicas agree on: the advisory lock that serializes migrations.
_LOCK_KEY = 0x706F73746C696E65  # "postline"

_BOOTSTRAP = (
    "CREATE TABLE IF NOT EXISTS store_migrations ("
    " version integer PRIMARY KEY, name text NOT NULL, applied_at double precision NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change for one dialect."""

    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(sql: str) -> tuple[str, ...]:
    """The statements of a migration file (our own files: no ``;`` inside a literal)."""
    out: list[str] = []
    pending = ""
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            out.append(pending.strip().rstrip(";").strip())
            pending = ""
    if pending.strip():
        raise StoreError(f"a migration ends inside a statement: {pending.strip()[:60]!r}")
    return tuple(s for s in out if s)


def migrations(dialect: Dialect) -> tuple[Migration, ...]:
    """The dialect's migrations, in version order."""
    folder = resources.files("shared.store").joinpath("migrations", dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match[1]), match[2], split_statements(entry.read_text("utf-8"))))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise StoreError(
            f"{dialect} migrations are not numbered 1..n: {[m.version for m in found]}"
        )
    return tuple(found)


#: The schema version this code reads and writes (the highest migration number).
LATEST = len(migrations("sqlite"))


async def applied_version(db: Database) -> int:
    """The highest migration applied to ``db`` (0: an empty database)."""
    await db.execute(_BOOTSTRAP)
    return int(await db.fetchval("SELECT coalesce(max(version), 0) FROM store_migrations"))


async def check_schema(db: Database) -> int:
    """The database's schema version; :class:`SchemaTooNew` when it is above :data:`LATEST`."""
    version = await applied_version(db)
    if version > LATEST:
        raise SchemaTooNew(
            f"the store at this url has schema version {version}, but this Postline knows "
            f"versions up to {LATEST}: it was migrated by a newer Postline. Run that version "
            "(or newer) of Postline against it; this one refuses to start."
        )
    return version


async def migrate(db: Database, *, now: float) -> list[int]:
    """Apply every migration ``db`` lacks; the versions applied (none: up to date).

    ``now`` is recorded as each version's ``applied_at``.
    """
    await check_schema(db)
    done: list[int] = []
    for migration in migrations(db.dialect):
        async with db.transaction() as tx:
            if tx.dialect == "postgres":
                await tx.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            have = await tx.fetchval(
                "SELECT count(*) FROM store_migrations WHERE version = $1", migration.version
            )
            if have:
                continue
            for statement in migration.statements:
                await tx.execute(statement)
            await tx.execute(
                "INSERT INTO store_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                now,
            )
        done.append(migration.version)
    return done
