"""``python -m testing.coverage_gate REPORT.json --line-floor N --branch-floor N`` (``make test``).

Reads the output of ``coverage json`` and prints line and branch coverage of what it measured
(services/ and shared/, see ``[tool.coverage.run]`` in pyproject.toml) as two figures.
coverage's own ``--fail-under`` compares one figure that mixes statements and branches, so a
drop in branch coverage can hide behind many covered lines: here each has its own floor.

Exit status: 0 when both figures reach their floors (or with ``--no-enforce``), 1 when one does
not, 2 when the report cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path


class ReportError(Exception):
    """The coverage JSON report is missing or is not what ``coverage json`` writes."""


@dataclass(frozen=True)
class Figures:
    """Covered and total statements and branches of one report."""

    covered_lines: int
    statements: int
    covered_branches: int
    branches: int

    @property
    def line_percent(self) -> float:
        """Share of statements run, in percent (100 when there are none)."""
        return _percent(self.covered_lines, self.statements)

    @property
    def branch_percent(self) -> float:
        """Share of branch directions taken, in percent (100 when there are none)."""
        return _percent(self.covered_branches, self.branches)


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 100.0


def read_figures(report: dict[str, object]) -> Figures:
    """The totals of a parsed ``coverage json`` report (measured with ``branch = true``)."""
    totals = report.get("totals")
    if not isinstance(totals, dict):
        raise ReportError("no 'totals' in the report: not written by `coverage json`")
    try:
        return Figures(
            covered_lines=int(totals["covered_lines"]),
            statements=int(totals["num_statements"]),
            covered_branches=int(totals["covered_branches"]),
            branches=int(totals["num_branches"]),
        )
    except KeyError as missing:
        # num_branches is only there when the data was measured with branch = true.
        raise ReportError(f"no {missing} in the report's totals (branch coverage off?)") from None


def check(figures: Figures, line_floor: float, branch_floor: float) -> list[str]:
    """One line per figure below its floor (empty: the gate passes).

    Figures are compared as printed (one decimal), so "84.95% < 85%" cannot pass while the
    output shows 85.0%.
    """
    failures = []
    for name, value, floor in (
        ("line", figures.line_percent, line_floor),
        ("branch", figures.branch_percent, branch_floor),
    ):
        shown = round(value, 1)
        if shown < floor:
            failures.append(f"{name} coverage {shown:.1f}% is below its floor {floor:g}%")
    return failures


def summary(figures: Figures, line_floor: float, branch_floor: float) -> str:
    """The one line ``make test`` prints: both figures with their floors."""
    return (
        f"coverage of services/ and shared/: "
        f"line {figures.line_percent:.1f}% ({figures.covered_lines}/{figures.statements}, "
        f"floor {line_floor:g}%), "
        f"branch {figures.branch_percent:.1f}% ({figures.covered_branches}/{figures.branches}, "
        f"floor {branch_floor:g}%)"
    )


def main(argv: list[str] | None = None) -> int:
    """Print the figures; fail when one is below its floor."""
    parser = argparse.ArgumentParser(prog="python -m testing.coverage_gate", description=__doc__)
    parser.add_argument("report", type=Path, help="the file `coverage json -o` wrote")
    parser.add_argument("--line-floor", type=float, required=True, help="least line coverage, %%")
    parser.add_argument(
        "--branch-floor", type=float, required=True, help="least branch coverage, %%"
    )
    parser.add_argument(
        "--no-enforce",
        action="store_true",
        help="print the figures only (a run narrowed by PYTEST_ARGS covers less)",
    )
    args = parser.parse_args(argv)
    try:
        figures = read_figures(json.loads(args.report.read_text(encoding="utf-8")))
    except (OSError, ValueError, ReportError) as error:
        print(f"coverage gate: cannot read {args.report}: {error}", file=sys.stderr)
        return 2
    print(summary(figures, args.line_floor, args.branch_floor))
    failures = check(figures, args.line_floor, args.branch_floor)
    if args.no_enforce:
        if failures:
            print("coverage gate not enforced (PYTEST_ARGS narrows the run)")
        return 0
    for failure in failures:
        print(
            f"coverage gate FAILED: {failure}. Cover the code you added (what is not covered: "
            f"`.venv/bin/python -m coverage html`, then .coverage-data/html/index.html), or "
            f"say in the review why it cannot be; never lower a floor to pass.",
            file=sys.stderr,
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
