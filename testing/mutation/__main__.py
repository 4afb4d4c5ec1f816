"""``python -m testing.mutation [--module PATH] [--jobs N] [--json FILE]`` (``make mutation``).

Exit status: 0 when every module tried reaches ``--floor`` (killed share of the mutants that
are not listed as equivalent), 1 when one does not, 2 when the run cannot start.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from testing.mutation.runner import (
    MutationError,
    as_json,
    load_equivalents,
    load_targets,
    report,
    run,
)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the table."""
    parser = argparse.ArgumentParser(prog="make mutation", description=__doc__)
    parser.add_argument("--module", action="append", default=[], help="only this module")
    parser.add_argument("--jobs", type=int, default=2, help="copies tried in parallel")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--floor", type=float, default=0.9, help="least killed share")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parents[2]
    targets = load_targets()
    if args.module:
        known = {target.module for target in targets}
        unknown = sorted(set(args.module) - known)
        if unknown:
            print(f"not in testing/mutation/targets.toml: {', '.join(unknown)}", file=sys.stderr)
            return 2
        targets = [target for target in targets if target.module in args.module]
    try:
        results = run(root, targets, jobs=args.jobs, equivalents=load_equivalents())
    except MutationError as exc:
        print(f"mutation: {exc}", file=sys.stderr)
        return 2
    print(report(results))
    if args.json is not None:
        args.json.write_text(as_json(results) + "\n", encoding="utf-8")
    return 0 if all(result.score >= args.floor for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
