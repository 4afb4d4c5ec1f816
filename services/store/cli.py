"""``postline store``: the reporting store's database for operators.

``migrate`` applies the schema's missing migrations (the stage does it at start too; this is
for a deploy that migrates before rolling the pods) and ``status`` shows where the store is,
its schema version against this code's, the days it holds and how far behind it is.

Every ``postline`` command builds this parser, so the database drivers are imported by the
commands that use them, not here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from shared.config import Config
from shared.errors import ConfigError, SchemaTooNew, StoreError, StoreUnavailable


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """``postline store ...``."""
    store = commands.add_parser("store", help="the reporting store's database")
    sub = store.add_subparsers(dest="store_command", metavar="COMMAND", required=True)
    migrate = sub.add_parser("migrate", help="apply the schema's missing migrations")
    migrate.set_defaults(handler=cmd_migrate)
    status = sub.add_parser("status", help="schema version, days held, newest event")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=cmd_status)


def _url(config: Config) -> str:
    from services.store.config import database_url  # noqa: PLC0415

    return database_url(config)


async def _migrate(url: str) -> list[int]:
    from shared.store.db import open_database  # noqa: PLC0415
    from shared.store.migrate import migrate  # noqa: PLC0415

    db = await open_database(url)
    try:
        return await migrate(db, now=time.time())
    finally:
        await db.close()


async def cmd_migrate(args: argparse.Namespace, config: Config) -> int:
    """Apply what is missing; print the versions applied."""
    from shared.store.db import redact  # noqa: PLC0415
    from shared.store.migrate import LATEST  # noqa: PLC0415

    try:
        url = _url(config)
        applied = await _migrate(url)
    except (ConfigError, SchemaTooNew) as exc:
        print(f"postline store migrate: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"postline store migrate: {exc}", file=sys.stderr)
        return 2
    where = redact(url)
    if applied:
        print(f"{where}: applied {', '.join(map(str, applied))}; schema version {LATEST}")
    else:
        print(f"{where}: up to date (schema version {LATEST})")
    return 0


async def status_of(url: str, now: float) -> dict[str, Any]:
    """What ``postline store status`` shows, as a dict (``reachable`` false when the
    database does not answer)."""
    from shared.store.db import open_database, redact  # noqa: PLC0415
    from shared.store.migrate import LATEST, applied_version  # noqa: PLC0415

    out: dict[str, Any] = {"url": redact(url), "code_version": LATEST}
    try:
        db = await open_database(url)
    except StoreUnavailable as exc:
        return {**out, "reachable": False, "error": str(exc)}
    try:
        version = await applied_version(db)
        out.update(reachable=True, schema_version=version)
        if version == 0:
            return out
        days = await db.fetch("SELECT DISTINCT day FROM rollup_hourly ORDER BY day")
        newest = await db.fetchval("SELECT max(hour) FROM rollup_hourly")
        out["days"] = [row["day"] for row in days]
        if newest is not None:
            out["newest_hour"] = int(newest)
            out["behind_seconds"] = max(0, int(now - int(newest) - 3600))
        out["erasures"] = int(await db.fetchval("SELECT count(*) FROM erasures"))
    finally:
        await db.close()
    return out


async def cmd_status(args: argparse.Namespace, config: Config) -> int:
    """Print the store's status; exit 2 when the database does not answer."""
    try:
        status = await status_of(_url(config), time.time())
    except ConfigError as exc:
        print(f"postline store status: {exc}", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"postline store status: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(status, sort_keys=True))
    else:
        for key, value in status.items():
            days = key == "days" and value
            shown = f"{len(value)} ({value[0]} .. {value[-1]})" if days else value
            print(f"{key:15} {shown}")
        version = status.get("schema_version")
        if version is not None and version < status["code_version"]:
            print("the schema is behind this code: postline store migrate (or start the stage)")
        elif version is not None and version > status["code_version"]:
            print("the schema is newer than this code: run a newer Postline")
    return 0 if status.get("reachable") else 2
