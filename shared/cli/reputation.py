"""``postline reputation [TENANT]``: the reputation table, as the reputation stage left it.

Reads the compacted ``postline.reputation`` through a client bus (``shared.cli.tenant``'s,
beside a running ``postline run`` or against Kafka) and prints one line per tenant, sending
domain and tenant-provider pair: what the window holds, its rates, its level and since
when. ``--json`` prints the same as one JSON object per line. The window and the figures are
the stage's (event time): this command only reads. Warm-up states are ``postline pool
status``'s.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from shared.bus.base import Bus
from shared.cli.tenant import with_bus
from shared.config import Config
from shared.errors import DecodeError
from shared.reputation import (
    SCOPE_ADDRESS,
    SCOPE_CREDENTIAL,
    SCOPE_DOMAIN,
    SCOPE_PROVIDER,
    SCOPE_TENANT,
    Rates,
    percent,
    total,
)
from shared.wire.records import Reputation
from shared.wire.topics import REPUTATION

_ORDER = {SCOPE_TENANT: 0, SCOPE_DOMAIN: 1, SCOPE_PROVIDER: 2, SCOPE_ADDRESS: 3}
_HEADER = (
    f"{'TENANT':<20} {'SCOPE':<8} {'NAME':<28} {'SENT':>8} {'DELIVERED':>9} {'BOUNCE':>7} "
    f"{'COMPLAINT':>9} {'BLOCK':>6} {'LEVEL':<8} SINCE"
)


def add_reputation_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``reputation [TENANT] [--json]``."""
    command = commands.add_parser(
        "reputation", help="sender reputation: rates and levels per tenant, domain, provider"
    )
    command.add_argument("tenant", nargs="?", default="", help="only this tenant")
    command.add_argument("--json", action="store_true", help="one JSON object per line")
    command.set_defaults(handler=cmd_reputation)


async def read_records(bus: Bus) -> list[Reputation]:
    """Every record on ``postline.reputation`` (one a newer writer made that this version
    cannot decode is left out)."""
    await bus.ensure_topics([REPUTATION.name])
    records: list[Reputation] = []
    for value in (await bus.read_table(REPUTATION.name)).values():
        try:
            records.append(REPUTATION.decode(value))
        except DecodeError:
            continue
    return records


def when(at: float) -> str:
    """A record time for people (UTC, to the second); ``-`` for none."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)) if at > 0 else "-"


def row(record: Reputation) -> dict[str, Any]:
    """One scope as plain data (``--json``)."""
    counts = total(record.buckets)
    rates = Rates.of(counts)
    return {
        "key": record.key,
        "scope": record.scope,
        "tenant": record.tenant,
        "domain": record.domain,
        "provider": record.provider,
        "sent": counts.sent,
        "delivered": counts.delivered,
        "hard_bounces": counts.hard_bounces,
        "soft_bounces": counts.soft_bounces,
        "blocks": counts.blocks,
        "complaints": counts.complaints,
        "unsubscribes": counts.unsubscribes,
        "deferred": counts.deferred,
        "bounce_rate": rates.bounce,
        "complaint_rate": rates.complaint,
        "block_rate": rates.block,
        "level": record.level,
        "since": when(record.level_since),
        "updated": when(record.updated_at),
    }


def line(record: Reputation) -> str:
    """One scope as a table line."""
    data = row(record)
    name = record.domain or record.provider or "-"
    return (
        f"{record.tenant:<20} {record.scope:<8} {name:<28} {data['sent']:>8} "
        f"{data['delivered']:>9} {percent(data['bounce_rate']):>7} "
        f"{percent(data['complaint_rate']):>9} {percent(data['block_rate']):>6} "
        f"{record.level:<8} {data['since']}"
    )


def selected(records: list[Reputation], tenant: str) -> list[Reputation]:
    """The tenant, domain and provider scopes (of ``tenant`` when given), in table order
    (warm-up states are ``pool status``'s, credentials ``credential list``'s)."""
    chosen = [
        r
        for r in records
        if r.scope not in (SCOPE_ADDRESS, SCOPE_CREDENTIAL) and (not tenant or r.tenant == tenant)
    ]
    return sorted(chosen, key=lambda r: (r.tenant, _ORDER.get(r.scope, 9), r.key))


async def cmd_reputation(args: argparse.Namespace, config: Config) -> int:
    """``reputation [TENANT] [--json]``; exit 1 when a named tenant has no record."""

    async def body(bus: Bus) -> int:
        records = selected(await read_records(bus), args.tenant)
        if args.json:
            for record in records:
                print(json.dumps(row(record), sort_keys=True))
            return 0
        if not records:
            print(f"no reputation records{f' for tenant {args.tenant}' if args.tenant else ''}")
            return 1 if args.tenant else 0
        print(_HEADER)
        for record in records:
            print(line(record))
        return 0

    return await with_bus(config, body)
