"""Lints the SQL of the dashboards that read the reporting store, offline.

Each query (and each query variable) has Grafana's macros and variables replaced by values of
the right type, then goes through PostgreSQL's own parser (``pglast``, libpg_query). Every
table it reads must be one the store's PostgreSQL migrations create, and every column it names
one of those tables' columns (or an alias the query itself defines). The tests also run every
query against a real PostgreSQL (``tests/deploy/local/test_store_dashboard.py``). Owns this
lint.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pglast
from common import REPO
from pglast import ast
from pglast.visitors import Visitor

MIGRATIONS = REPO / "shared/store/migrations/postgres"
STORE_TYPE = "grafana-postgresql-datasource"

_MACROS = (
    (re.compile(r"\$__unixEpochFilter\((\w+)\)"), r"\1 BETWEEN 1700000000 AND 1700086400"),
    (re.compile(r"\$__timeFilter\((\w+)\)"), r"\1 BETWEEN now() - interval '1 day' AND now()"),
    (re.compile(r"\$__unixEpochFrom\(\)"), "1700000000"),
    (re.compile(r"\$__unixEpochTo\(\)"), "1700086400"),
)
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")


def expand(sql: str) -> str:
    """``sql`` as Grafana would send it: macros and (multi-valued) variables replaced."""
    for pattern, replacement in _MACROS:
        sql = pattern.sub(replacement, sql)
    return _VARIABLE.sub("'value'", sql)


@cache
def schema(folder: Path = MIGRATIONS) -> dict[str, frozenset[str]]:
    """Table -> its columns, from the migrations (``CREATE TABLE`` and ``ALTER TABLE ...
    ADD COLUMN``), in version order."""
    tables: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.sql")):
        for raw in pglast.parse_sql(path.read_text()):
            stmt = raw.stmt
            if isinstance(stmt, ast.CreateStmt):
                tables[stmt.relation.relname] = {
                    c.colname for c in stmt.tableElts or () if isinstance(c, ast.ColumnDef)
                }
            elif isinstance(stmt, ast.AlterTableStmt):
                for cmd in stmt.cmds or ():
                    if isinstance(cmd.def_, ast.ColumnDef):
                        tables[stmt.relation.relname].add(cmd.def_.colname)
    return {name: frozenset(cols) for name, cols in tables.items()}


class _Names(Visitor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.tables: set[str] = set()
        self.columns: set[str] = set()
        self.aliases: set[str] = set()

    def visit_RangeVar(self, ancestors: Any, node: ast.RangeVar) -> None:
        self.tables.add(node.relname)

    def visit_ColumnRef(self, ancestors: Any, node: ast.ColumnRef) -> None:
        last = node.fields[-1]
        if isinstance(last, ast.String):
            self.columns.add(last.sval)

    def visit_ResTarget(self, ancestors: Any, node: ast.ResTarget) -> None:
        if node.name:
            self.aliases.add(node.name)


def problems(sql: str, tables: dict[str, frozenset[str]] | None = None) -> list[str]:
    """What is wrong with one query: a parse error, an unknown table or column."""
    known = schema() if tables is None else tables
    try:
        parsed = pglast.parse_sql(expand(sql))
    except pglast.parser.ParseError as exc:
        return [f"does not parse: {exc}"]
    if len(parsed) != 1 or not isinstance(parsed[0].stmt, ast.SelectStmt):
        return ["is not one SELECT"]
    names = _Names()
    names(parsed[0].stmt)
    found = [
        f"reads table {t!r}, which no migration creates"
        for t in sorted(names.tables - known.keys())
    ]
    columns: set[str] = set().union(*(known[t] for t in names.tables if t in known))
    found += [
        f"names column {c!r}, which none of its tables {sorted(names.tables)} has"
        for c in sorted(names.columns - columns - names.aliases)
    ]
    return found


def queries(board: dict[str, Any], name: str) -> Iterator[tuple[str, str]]:
    """(where, sql) of every store query of a dashboard, its variables' included."""
    for panel in board.get("panels", []):
        for target in panel.get("targets", []):
            if "rawSql" in target:
                yield (
                    f"{name}: panel {panel.get('title')!r} {target.get('refId')}",
                    target["rawSql"],
                )
    for variable in board.get("templating", {}).get("list", []):
        if (variable.get("datasource") or {}).get("type") == STORE_TYPE:
            yield f"{name}: variable {variable['name']!r}", variable["query"]


def lint(board: dict[str, Any], name: str) -> list[str]:
    """Every problem of a dashboard's store queries."""
    return [
        f"{where}: {problem}\n    {sql}"
        for where, sql in queries(board, name)
        for problem in problems(sql)
    ]
