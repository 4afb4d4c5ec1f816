"""The coverage gate of ``make test``: two figures, two floors, read from ``coverage json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testing.coverage_gate import Figures, ReportError, check, main, read_figures, summary

# A module with one statement and one branch direction never run when called with True.
SAMPLE = """\
def sign(flag):
    if flag:
        return 1
    return -1


sign(True)
"""


def real_report(tmp_path: Path) -> Path:
    """What ``coverage json`` writes for SAMPLE measured with branch coverage (a real run)."""
    (tmp_path / "sample.py").write_text(SAMPLE)
    (tmp_path / ".coveragerc").write_text("[run]\nbranch = true\n")
    # The outer run's settings (make test measures this process and its children) stay out.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    for command in (["run", "sample.py"], ["json", "-o", "report.json"]):
        subprocess.run(
            [sys.executable, "-m", "coverage", *command],
            cwd=tmp_path,
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
    return tmp_path / "report.json"


def test_reads_the_totals_coverage_json_writes(tmp_path: Path) -> None:
    report = json.loads(real_report(tmp_path).read_text())
    # 4 statements (def, if, return 1, sign(True)) of 5 run; 2 branch directions, 1 taken.
    assert read_figures(report) == Figures(
        covered_lines=4, statements=5, covered_branches=1, branches=2
    )


def test_line_and_branch_have_their_own_floors() -> None:
    figures = Figures(covered_lines=95, statements=100, covered_branches=80, branches=100)
    assert figures.line_percent == 95.0
    assert figures.branch_percent == 80.0
    assert check(figures, line_floor=95, branch_floor=80) == []
    assert check(figures, line_floor=96, branch_floor=80) == [
        "line coverage 95.0% is below its floor 96%"
    ]
    # Many covered lines do not make up for branches (what one mixed figure would allow).
    assert check(figures, line_floor=90, branch_floor=81) == [
        "branch coverage 80.0% is below its floor 81%"
    ]


def test_a_figure_printed_at_the_floor_passes_and_one_just_under_fails() -> None:
    at = Figures(covered_lines=8496, statements=10000, covered_branches=1, branches=1)
    under = Figures(covered_lines=8494, statements=10000, covered_branches=1, branches=1)
    assert check(at, line_floor=85, branch_floor=0) == []  # 84.96 prints as 85.0
    assert check(under, line_floor=85, branch_floor=0) == [
        "line coverage 84.9% is below its floor 85%"
    ]


def test_nothing_measured_counts_as_covered() -> None:
    empty = Figures(covered_lines=0, statements=0, covered_branches=0, branches=0)
    assert (empty.line_percent, empty.branch_percent) == (100.0, 100.0)


def test_a_report_without_branches_is_refused() -> None:
    totals = {"covered_lines": 1, "num_statements": 2}
    with pytest.raises(ReportError, match="branch coverage off"):
        read_figures({"totals": totals})
    with pytest.raises(ReportError, match="totals"):
        read_figures({"files": {}})


def test_summary_shows_both_figures_with_their_floors() -> None:
    figures = Figures(covered_lines=861, statements=1000, covered_branches=71, branches=100)
    assert summary(figures, 85, 70) == (
        "coverage of services/ and shared/: line 86.1% (861/1000, floor 85%), "
        "branch 71.0% (71/100, floor 70%)"
    )


def test_main_fails_below_a_floor_and_says_which(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = real_report(tmp_path)  # line 80.0%, branch 50.0%
    assert main([str(report), "--line-floor", "80", "--branch-floor", "50"]) == 0
    assert "line 80.0% (4/5, floor 80%), branch 50.0% (1/2, floor 50%)" in capsys.readouterr().out
    assert main([str(report), "--line-floor", "80", "--branch-floor", "51"]) == 1
    captured = capsys.readouterr()
    assert "line 80.0%" in captured.out
    assert "branch coverage 50.0% is below its floor 51%" in captured.err


def test_no_enforce_prints_and_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = real_report(tmp_path)
    args = [str(report), "--line-floor", "99", "--branch-floor", "99", "--no-enforce"]
    assert main(args) == 0
    assert "not enforced" in capsys.readouterr().out


def test_an_unreadable_report_is_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.json"
    assert main([str(missing), "--line-floor", "1", "--branch-floor", "1"]) == 2
    (tmp_path / "bad.json").write_text("{")
    assert main([str(tmp_path / "bad.json"), "--line-floor", "1", "--branch-floor", "1"]) == 2
    assert "cannot read" in capsys.readouterr().err
