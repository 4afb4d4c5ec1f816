"""deploy/check/sqllint.py: the store dashboard's SQL against the store's own schema."""

from __future__ import annotations

import json

import dashboards
import pytest
import sqllint

STORE_BOARD = dashboards.DASHBOARDS / "postline-store.json"


def test_the_committed_store_dashboard_is_clean() -> None:
    board = json.loads(STORE_BOARD.read_text())
    where = [w for w, _ in sqllint.queries(board, "store")]
    # Every panel and both variables were looked at, not none of them.
    assert len(where) >= 12
    assert any("variable 'campaign'" in w for w in where)
    assert sqllint.lint(board, "store") == []


def test_the_dashboard_reads_only_rollups_never_events() -> None:
    board = json.loads(STORE_BOARD.read_text())
    for _, sql in sqllint.queries(board, "store"):
        assert " events" not in sql and "messages" not in sql, sql


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT sum(nope) FROM rollup_hourly", "names column 'nope'"),
        ("SELECT tenant FROM rollups", "reads table 'rollups'"),
        ("SELECT tenant FROM rollup_hourly WHERE $__unixEpochFilter(hour", "does not parse"),
        ("DELETE FROM rollup_hourly", "is not one SELECT"),
        # A column of another table of the schema is still an error here.
        ("SELECT recipient_domain FROM rollup_hourly", "names column 'recipient_domain'"),
    ],
)
def test_a_wrong_query_is_named(sql: str, expected: str) -> None:
    found = sqllint.problems(sql)
    assert found and expected in found[0]


def test_aliases_and_macros_are_understood() -> None:
    sql = (
        "SELECT hour AS time, sum(delivered) AS d FROM rollup_hourly "
        "WHERE $__unixEpochFilter(hour) AND tenant IN ($tenant) GROUP BY hour ORDER BY time"
    )
    assert sqllint.problems(sql) == []
    assert "BETWEEN" in sqllint.expand(sql) and "'value'" in sqllint.expand(sql)


def test_a_lint_failure_reaches_the_dashboard_lint(tmp_path) -> None:  # type: ignore[no-untyped-def]
    board = json.loads(STORE_BOARD.read_text())
    board["panels"][1]["targets"][0]["rawSql"] = "SELECT sum(nope) FROM rollup_hourly"
    for path in dashboards.DASHBOARDS.glob("*.json"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "postline-store.json").write_text(json.dumps(board))
    assert any("names column 'nope'" in p for p in dashboards.lint(tmp_path))
