"""The three-broker cluster, the scenario selection and the table of results.

Which tests run:

- ``POSTLINE_TEST_KAFKA_CLUSTER`` unset (a plain ``pytest``): none of this folder (they are
  deselected, not skipped: they need brokers ``make test-cluster`` starts);
- set (the Makefile sets it after ``deploy/local/kafka.sh cluster-up``):
  ``POSTLINE_TEST_CLUSTER_SCENARIOS=all`` runs every test (``make test-cluster``), anything
  else only those marked ``cluster_ci`` (the short subset ``make test`` runs). An address
  set but not answering fails under ``CI=true`` and skips otherwise.

Each scenario records its :class:`~testing.harness.faults.Report`; at the end of the session
the table of counts and recovery times is printed and, with
``POSTLINE_TEST_CLUSTER_REPORT=path``, written there as JSON.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from testing.harness.brokers import BrokerCluster
from testing.harness.faults import Report

CLUSTER_ENV = "POSTLINE_TEST_KAFKA_CLUSTER"
SCENARIOS_ENV = "POSTLINE_TEST_CLUSTER_SCENARIOS"
REPORT_ENV = "POSTLINE_TEST_CLUSTER_REPORT"
_HERE = Path(__file__).parent
_REPORTS = pytest.StashKey[list[Report]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster_ci: a cluster test make test runs too")
    config.stash[_REPORTS] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    everything = os.environ.get(SCENARIOS_ENV, "") == "all"
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        ours = _HERE in Path(str(item.path)).parents
        wanted = bool(os.environ.get(CLUSTER_ENV)) and (
            everything or item.get_closest_marker("cluster_ci") is not None
        )
        (drop if ours and not wanted else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def brokers() -> BrokerCluster:
    """The three-node cluster; under CI a node that does not answer fails, never skips."""
    bootstrap = os.environ.get(CLUSTER_ENV, "")
    down = [a for a in bootstrap.split(",") if not _reachable(a)]
    if not bootstrap or down:
        message = f"no three-broker cluster at {bootstrap!r} (make test-cluster starts it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return BrokerCluster(bootstrap)


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[[Report], None]:
    """Keep a scenario's report for the table (call it before asserting on the report)."""
    return request.config.stash[_REPORTS].append


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reports = terminalreporter.config.stash.get(_REPORTS, [])
    if not reports:
        return
    terminalreporter.write_sep("=", "Kafka cluster faults: counts and recovery")
    for line in table(reports):
        terminalreporter.write_line(line)
    path = os.environ.get(REPORT_ENV)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(
            json.dumps({"scenarios": [r.as_dict() for r in reports]}, indent=2) + "\n"
        )
        terminalreporter.write_line(f"written to {path}")


def table(reports: list[Report]) -> list[str]:
    """The table of counts, one line per scenario."""
    head = (
        "scenario",
        "sent",
        "250",
        "4xx",
        "deliv",
        "lost",
        "dup@sink",
        "dup topics",
        "dead",
        "outage s",
        "recov fault s",
        "recov repair s",
    )
    rows = [head]
    for r in reports:
        c = r.counts
        rows.append(
            (
                r.name,
                str(c.sent),
                str(c.accepted),
                str(c.deferred),
                str(c.delivered),
                str(c.lost),
                str(c.dup_sink),
                str(c.dup_topics),
                str(c.dead_letters),
                f"{r.outage:.1f}",
                _seconds(r.recovery_after("fault"), r, "fault"),
                _seconds(r.recovery_after("repair"), r, "repair"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]


def _seconds(value: float | None, report: Report, kind: str) -> str:
    if not any(m["kind"] == kind for m in report.recovery):
        return "-"
    return "never" if value is None else f"{value:.1f}"
