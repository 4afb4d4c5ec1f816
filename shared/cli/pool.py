"""``postline pool ...``: source-address pools; ``status`` shows each warming address's day,
``check`` each address's reverse DNS against its EHLO name.

``status`` prints, for every address marked ``warmup`` in ``[pools]`` and every provider the
reputation stage has seen it send to: the day of warm-up, the step of the schedule, today's
allowance, what it sent today and its health (advancing, holding, stepping_back, warm; "stuck"
when it has not advanced for ``[pools.warmup] stuck_after_days``). Read from
``postline.reputation`` (the stage counts by event time; "today" here is the UTC day now). A
day rolls over at the address's first attempt of the new day, when the stage judges the day
before: until then the record still shows the earlier day, and this prints 0 sent today.

``check`` looks up, for every address of every pool (or of the pools named), the PTR record,
the forward (A/AAAA) record of the PTR name and compares the forward-confirmed name with the
EHLO name the address greets with (its ``ehlo_name``, else ``deliverer.ehlo_name``):
``shared.fcrdns`` says why receivers care. It asks ``--nameserver`` (repeatable), else
``deliverer.nameservers``, else the system's resolver, and exits 1 on any mismatch or failed
lookup, so it can gate a deployment.
"""

from __future__ import annotations

import argparse
import asyncio
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
    check = sub.add_parser(
        "check", help="PTR, forward DNS and EHLO name of every pool address (FCrDNS)"
    )
    check.add_argument("pools", nargs="*", metavar="POOL", help="only these pools (default: all)")
    check.add_argument(
        "--nameserver",
        action="append",
        default=[],
        metavar="IP[:PORT]",
        help="DNS server to ask (repeatable; default: deliverer.nameservers, else the system's)",
    )
    check.set_defaults(handler=cmd_check)
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


async def cmd_check(args: argparse.Namespace, config: Config) -> int:
    """``pool check [POOL...] [--nameserver IP[:PORT]]``: one line per address; exit 1 on any
    mismatch or failed lookup, 2 for an unknown pool name."""
    # dnspython loads only for this command, not whenever the parser is built.
    from shared.fcrdns import OK, SourceCheck, check_source, resolver_for  # noqa: PLC0415

    pools = config.core.pools
    unknown = [name for name in args.pools if name not in pools.pool]
    if unknown:
        print(f"unknown pool: {', '.join(unknown)} (configured: {', '.join(pools.pool) or 'none'})")
        return 2
    if not pools.pool:
        print("no source pools are configured ([pools.pool.<name>])")
        return 0
    deliverer = config.core.deliverer
    fallback = str(deliverer.get("ehlo_name") or "localhost")  # DelivererConfig's default
    configured = deliverer.get("nameservers", [])
    nameservers = args.nameserver or (
        [str(ns) for ns in configured] if isinstance(configured, list) else []
    )
    resolver = resolver_for(nameservers)
    targets = [
        (name, entry.address, entry.ehlo_name or fallback)
        for name, pool in pools.pool.items()
        if not args.pools or name in args.pools
        for entry in pool.addresses
    ]
    checks: list[SourceCheck] = await asyncio.gather(
        *(check_source(address, ehlo, resolver) for _, address, ehlo in targets)
    )
    width = max(len(address) for _, address, _ in targets)
    for (name, _, _), found in zip(targets, checks, strict=True):
        print(
            f"{found.status:<8} {name:<12} {found.address:<{width}} "
            f"ehlo {found.ehlo_name}: {found.detail}"
        )
    return 0 if all(found.status == OK for found in checks) else 1
