"""A replica-like child process: ``--attempts`` checks of one key through RedisLimiter.

Its injected clock starts at ``--start`` and moves ``--step`` seconds after each check (0:
frozen), so what it may be allowed depends on the checks, never on the machine's speed. It
prints the number of allowed checks as its only line on standard output.

Run as a script: ``python tests/shared/limits/limits_child.py ...`` (it puts the repository
root on ``sys.path`` itself).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from shared.limits import Rule
from tests.shared.limits.limiters import LimiterTarget, StepClock


def rule_from(spec: str) -> Rule:
    """``rate:NAME:LIMIT:PERIOD:BURST`` or ``quota:NAME:LIMIT:WINDOW``."""
    kind, name, limit, *rest = spec.split(":")
    if kind == "rate":
        return Rule.rate(name, int(limit), float(rest[0]), int(rest[1]))
    return Rule.quota(name, int(limit), rest[0])  # type: ignore[arg-type]


async def run(args: argparse.Namespace) -> int:
    """Check ``args.attempts`` times; return how many were allowed."""
    clock = StepClock(args.start)
    limiter = LimiterTarget("redis", args.url, args.prefix).open(clock)
    rules = [rule_from(spec) for spec in args.rule]
    allowed = 0
    try:
        for _ in range(args.attempts):
            allowed += (await limiter.acquire(args.key, rules)).allowed
            clock.advance(args.step)
    finally:
        await limiter.close()
    return allowed


def main() -> None:
    """Parse the arguments, run, print the count."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--key", default="tenant-a")
    parser.add_argument("--rule", action="append", required=True)
    parser.add_argument("--attempts", type=int, required=True)
    parser.add_argument("--start", type=float, required=True)
    parser.add_argument("--step", type=float, default=0.0)
    print(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
