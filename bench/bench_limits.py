"""What one limit check costs: ``Limiter.acquire`` on Redis and in process.

    python bench/bench_limits.py [--redis redis://127.0.0.1:26379/0] [--checks 20000]

A check is the one ingest makes per message: a rate with a burst plus hourly, daily and
monthly quotas (four rules, one key each), through ``open_limiter`` as a process opens it
(the sensor's timing included). Keys rotate over ``--tenants`` tenants with limits no check
reaches, so every check does the full read-decide-write. Two runs per backend:
- sequential: one check at a time; checks/s and p50/p99 latency of a single check;
- concurrent: ``--concurrency`` tasks checking at once (SMTP sessions); checks/s and p99.
Figures are printed and written to bench/results/limits.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

from prometheus_client import CollectorRegistry

from shared.config import LimitsConfig
from shared.limits import Limiter, Rule, open_limiter

RESULTS = Path(__file__).resolve().parent / "results" / "limits.json"

RULES = [
    Rule.rate("per_second", 1_000_000, burst=1_000_000),
    Rule.quota("per_hour", 10**12, "hour"),
    Rule.quota("per_day", 10**12, "day"),
    Rule.quota("per_month", 10**12, "month"),
]


def quantile(values: list[float], q: int) -> float:
    """The q-th percentile of ``values`` in milliseconds."""
    return statistics.quantiles(values, n=100)[q - 1] * 1000.0


async def sequential(limiter: Limiter, checks: int, tenants: int) -> dict[str, float]:
    """One check at a time."""
    latencies = []
    started = time.perf_counter()
    for i in range(checks):
        t0 = time.perf_counter()
        verdict = await limiter.acquire(f"tenant-{i % tenants}", RULES)
        latencies.append(time.perf_counter() - t0)
        assert verdict.allowed and not verdict.local, verdict
    elapsed = time.perf_counter() - started
    return {
        "checks_per_s": checks / elapsed,
        "p50_ms": quantile(latencies, 50),
        "p99_ms": quantile(latencies, 99),
    }


async def concurrent(
    limiter: Limiter, checks: int, tenants: int, concurrency: int
) -> dict[str, float]:
    """``concurrency`` tasks sharing ``checks`` checks."""
    latencies: list[float] = []
    per_task = checks // concurrency

    async def worker(n: int) -> None:
        for i in range(per_task):
            t0 = time.perf_counter()
            verdict = await limiter.acquire(f"tenant-{(n + i) % tenants}", RULES)
            latencies.append(time.perf_counter() - t0)
            assert verdict.allowed and not verdict.local, verdict

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "checks_per_s": len(latencies) / elapsed,
        "p50_ms": quantile(latencies, 50),
        "p99_ms": quantile(latencies, 99),
    }


async def run_backend(config: LimitsConfig, args: argparse.Namespace) -> dict[str, object]:
    """Both runs on one backend, after a warm-up (connections, script loaded)."""
    limiter = open_limiter(config, CollectorRegistry())
    try:
        await sequential(limiter, 200, args.tenants)
        return {
            "backend": config.backend,
            "sequential": await sequential(limiter, args.checks, args.tenants),
            "concurrent": await concurrent(limiter, args.checks, args.tenants, args.concurrency),
        }
    finally:
        await limiter.close()


async def main() -> int:
    """Run the benchmark and print and store the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="", help="URL of a Redis to measure too")
    parser.add_argument("--checks", type=int, default=20000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    configs = [LimitsConfig(backend="local")]
    if args.redis:
        # A prefix of its own: the run never touches other keys, and its keys expire.
        prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        configs.append(
            LimitsConfig(backend="redis", redis_url=args.redis, key_prefix=prefix, timeout=1.0)
        )
    results = [await run_backend(config, args) for config in configs]
    print(f"{'backend':<8} {'run':<11} {'checks/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        for run in ("sequential", "concurrent"):
            f = r[run]
            assert isinstance(f, dict)
            print(
                f"{r['backend']!s:<8} {run:<11} {f['checks_per_s']:>10.0f} "
                f"{f['p50_ms']:>8.3f} {f['p99_ms']:>8.3f}"
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "checks": args.checks,
        "tenants": args.tenants,
        "concurrency": args.concurrency,
        "rules": [rule.name for rule in RULES],
    }
    RESULTS.write_text(json.dumps({"params": meta, "results": results}, indent=2))
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
