"""``postline pool ...``: source-address pools; ``status`` shows each warming address's day.

``status`` prints, for every address marked ``warmup`` in ``[pools]`` and every provider the
reputation stage has seen it send to: the day of warm-up, the step of the schedule, today's
allowance, what it sent today and its health (advancing, holding, stepping_back, warm; "stuck"
when it has not advanced for ``[pools.warmup] stuck_after_days``). Read from
``postline.reputation`` (the stage counts by event time; "today" here is the UTC day now). A
day rolls over at the address's first attempt of the new day, when the stage judges the day
before: until then the record still shows the earlier day, and this prints 0 sent today.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from shared.bus.base import Bus
from shared.cli.reputation import read_records
from shared.cli.tenant import with_bus
from shared.config import Config
from shared.pools import PoolsConfig
from shared.reputation import SCOPE_ADDRESS, day_of, sent_today, stuck
from shared.wire.records import Reputation

_HEADER = (
    f"{'SOURCE':<40} {'PROVIDER':<12} {'DAY':>4} {'STEP':>4} {'ALLOWANCE':>10} "
    f"{'SENT TODAY':>10} HEALTH"
)


def add_pool_commands(commands: argparse._SubParsersAction[Any]) -> argparse._SubParsersAction[Any]:
    """Register ``pool status``; returns the ``pool`` sub-command action for more."""
    pool = commands.add_parser("pool", help="source-address pools and their warm-up")
    sub: argparse._SubParsersAction[Any] = pool.add_subparsers(
        dest="pool_command", required=True, metavar="COMMAND"
    )
    status = sub.add_parser("status", help="each warming address's day, allowance and health")
    status.add_argument("--json", action="store_true", help="one JSON object per line")
    status.set_defaults(handler=cmd_status)
    return sub


def status_rows(pools: PoolsConfig, records: list[Reputation], now: float) -> list[dict[str, Any]]:
    """One row per warming address and provider (an address with no attempt yet: one row
    with provider "-")."""
    today = day_of(now)
    warming = pools.warming()
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for record in sorted(records, key=lambda r: (r.address, r.provider)):
        state = record.warmup
        if record.scope != SCOPE_ADDRESS or state is None or record.address not in warming:
            continue
        seen.add(record.address)
        health = state.health
        if stuck(state, today, pools.warmup.stuck_after_days):
            health += " (stuck)"
        rows.append(
            {
                "source": record.address,
                "provider": record.provider,
                "day": max(today, state.day) - state.started_day + 1,
                "step": state.step,
                "allowance": state.allowance,
                "sent_today": sent_today(state, today),
                "health": health,
            }
        )
    for address in sorted(set(warming) - seen):
        rows.append(
            {
                "source": address,
                "provider": "-",
                "day": 0,
                "step": 0,
                "allowance": pools.warmup.schedule[0],
                "sent_today": 0,
                "health": "not started",
            }
        )
    return rows


async def cmd_status(args: argparse.Namespace, config: Config) -> int:
    """``pool status [--json]``."""
    pools = config.core.pools
    if not pools.warming():
        print("no address is warming up ([pools] has no address with warmup = true)")
        return 0

    async def body(bus: Bus) -> int:
        rows = status_rows(pools, await read_records(bus), time.time())
        if args.json:
            for item in rows:
                print(json.dumps(item, sort_keys=True))
            return 0
        print(_HEADER)
        for item in rows:
            allowance = item["allowance"] or "none"
            print(
                f"{item['source']:<40} {item['provider']:<12} {item['day']:>4} "
                f"{item['step']:>4} {allowance:>10} {item['sent_today']:>10} {item['health']}"
            )
        return 0

    return await with_bus(config, body)
