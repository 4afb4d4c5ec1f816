"""``postline tenant usage ID``: what a tenant has sent in this hour, day and month, against
its limits, read from the shared counters without consuming anything.

The counts are the limiter's (``[limits]``): with the Redis backend they are the whole
cluster's; with the local backend they live inside each ingest process and a command cannot
read them, so it says so instead of printing zeros.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from shared import tenant_admin
from shared.bus.base import Bus
from shared.cli.tenant import with_bus
from shared.config import Config
from shared.errors import LimiterUnavailable

#: Exit code when the counts cannot be read (local backend, Redis unreachable).
EXIT_UNAVAILABLE = 2


def add_usage_command(tenant: argparse._SubParsersAction[Any]) -> None:
    """Register ``tenant usage`` under ``postline tenant``."""
    usage = tenant.add_parser("usage", help="messages this hour, day and month against limits")
    usage.add_argument("id")
    usage.set_defaults(handler=cmd_usage)


async def cmd_usage(args: argparse.Namespace, config: Config) -> int:
    """Print one line per quota: used, limit, and when its window resets (UTC)."""
    # The limiter stack (prometheus_client, redis) loads only for this command, not whenever
    # the parser is built.
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from shared.limits import open_limiter, window_bounds  # noqa: PLC0415
    from shared.tenant_limits import limit_key, message_rules  # noqa: PLC0415

    async def body(bus: Bus) -> int:
        tenant = await tenant_admin.get(bus, args.id)
        rules = [rule for rule in message_rules(tenant.limits) if rule.kind == "quota"]
        limiter = open_limiter(config.core.limits, CollectorRegistry())
        try:
            if limiter.backend == "local":
                print(
                    "usage is counted inside each ingest process with limits.backend = "
                    '"local"; the Redis backend shares the counts (and this command reads them)'
                )
                return EXIT_UNAVAILABLE
            try:
                used = await limiter.used(limit_key(tenant.id), rules)
            except LimiterUnavailable as exc:
                print(f"cannot read the counts: {exc}")
                return EXIT_UNAVAILABLE
        finally:
            await limiter.close()
        if not rules:
            print(f"tenant {tenant.id} has no hourly, daily or monthly limit")
        now = time.time()
        for rule in rules:
            _, end = window_bounds(now, rule.window)
            reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end))
            print(f"{rule.name:<10} {used.get(rule.name, 0):>10} / {rule.limit:<10} resets {reset}")
        if tenant.limits.per_second:
            print(
                f"per_second {tenant.limits.per_second:g}/s, burst {tenant.limits.burst or 'auto'}"
            )
        return 0

    return await with_bus(config, body)
