"""``postline webhooks``: tenants' webhook endpoints for operators.

``add`` (prints the signing secret once), ``set`` (URL, kinds, batch, description; the
secret stays), ``list``, ``remove``, ``pause``, ``resume``,
``test`` (one signed test request, now, with its result), ``replay`` (a time range of events
again, through the retry tiers: ``replay.py``) and ``redrive`` (dead-lettered webhook
deliveries back on the first tier with their age reset: ``shared.deadletters``). Changes
are tenant changes with their audit events (``admin.py``).

Every ``postline`` command builds this parser, so ``admin.py`` (the URL guard's aiohttp
resolver) and ``shared.sealing`` (cryptography) are imported by the commands that use them,
not here.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from typing import Any

import msgspec

from services.webhooks.config import load
from shared import deadletters, tenant_admin
from shared.bus.base import Bus
from shared.cli.tenant import actor, print_json, with_bus
from shared.config import Config
from shared.deadletters import Selection
from shared.wire.eventjson import TENANT_KINDS, timestamp
from shared.wire.records import DeadLetter, Record, TenantState, WebhookAttempt, WebhookEndpoint
from shared.wire.topics import WEBHOOK_RETRY_PREFIX, OutRecord


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """``postline webhooks ...``."""
    webhooks = commands.add_parser("webhooks", help="tenants' webhook endpoints")
    sub = webhooks.add_subparsers(dest="webhooks_command", metavar="COMMAND", required=True)

    add = sub.add_parser("add", help="add an endpoint (prints its signing secret once)")
    add.add_argument("tenant")
    add.add_argument("url", help="https://... (http://127.0.0.1 in development)")
    add.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="KIND",
        help=f"an event kind to send (repeat; default: all of {', '.join(sorted(TENANT_KINDS))})",
    )
    add.add_argument("--batch", type=int, default=1, help="up to this many events per request")
    add.add_argument("--description", default="")
    add.set_defaults(handler=cmd_add)

    change = sub.add_parser("set", help="change an endpoint's URL, kinds, batch or description")
    change.add_argument("tenant")
    change.add_argument("endpoint", help="its id (wh_...)")
    change.add_argument("--url", default=None)
    change.add_argument(
        "--kind", action="append", default=None, metavar="KIND", help="replaces the kinds"
    )
    change.add_argument("--all-kinds", action="store_true", help="every tenant kind again")
    change.add_argument("--batch", type=int, default=None)
    change.add_argument("--description", default=None)
    change.set_defaults(handler=cmd_set)

    listing = sub.add_parser("list", help="endpoints of one tenant or of all")
    listing.add_argument("tenant", nargs="?", default="")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)

    for name, handler, text in (
        ("remove", cmd_remove, "remove an endpoint (its waiting retries are dropped)"),
        ("pause", cmd_pause, "pause an endpoint (its events wait in the retry tiers)"),
        ("resume", cmd_resume, "resume a paused endpoint (its waiting events go out)"),
        ("test", cmd_test, "send one signed test event now and print the answer"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("tenant")
        command.add_argument("endpoint", help="its id (wh_...)")
        if name == "pause":
            command.add_argument("--why", default="paused by an operator")
        command.set_defaults(handler=handler)

    replay = sub.add_parser("replay", help="send a time range of a tenant's events again")
    replay.add_argument("tenant")
    replay.add_argument("--since", required=True, help="a duration ago (2h) or an ISO time")
    replay.add_argument("--until", default="", help="a duration ago or an ISO time (now)")
    replay.add_argument("--endpoint", default="", help="only this endpoint (wh_...)")
    replay.set_defaults(handler=cmd_replay)

    redrive = sub.add_parser("redrive", help="dead-lettered webhook deliveries, again")
    redrive.add_argument("--tenant", default="", help="only this tenant's")
    redrive.add_argument("--endpoint", default="", help="only this endpoint's (wh_...)")
    redrive.add_argument("--since", default="", help="dead-lettered since (2h, ISO time)")
    redrive.set_defaults(handler=cmd_redrive)


def endpoint_dict(tenant: str, endpoint: WebhookEndpoint) -> dict[str, Any]:
    """An endpoint as people see it: no secret."""
    data: dict[str, Any] = msgspec.to_builtins(endpoint)
    del data["sealed_secret"]
    return {"tenant": tenant, **data}


async def cmd_add(args: argparse.Namespace, config: Config) -> int:
    """``webhooks add TENANT URL``."""
    from services.webhooks import admin  # noqa: PLC0415
    from services.webhooks.stage import policy_of  # noqa: PLC0415
    from shared.sealing import load_keyring  # noqa: PLC0415

    cfg = load(config)
    keyring = load_keyring(config)

    async def body(bus: Bus) -> int:
        endpoint, secret = await admin.add(
            bus,
            keyring,
            args.tenant,
            args.url,
            policy=policy_of(cfg),
            kinds=args.kind,
            batch=args.batch,
            description=args.description,
            by=actor(),
        )
        print(f"endpoint {endpoint.id} added for tenant {args.tenant}: {endpoint.url}")
        print(f"signing secret (shown once, keep it): {secret}")
        return 0

    return await with_bus(config, body)


async def cmd_set(args: argparse.Namespace, config: Config) -> int:
    """``webhooks set TENANT ENDPOINT [--url U] [--kind K ...|--all-kinds] [--batch N]``."""
    from services.webhooks import admin  # noqa: PLC0415
    from services.webhooks.stage import policy_of  # noqa: PLC0415

    cfg = load(config)
    kinds = [] if args.all_kinds else args.kind

    async def body(bus: Bus) -> int:
        endpoint = await admin.change(
            bus,
            args.tenant,
            args.endpoint,
            policy=policy_of(cfg),
            by=actor(),
            url=args.url,
            kinds=kinds,
            batch=args.batch,
            description=args.description,
        )
        print_json(endpoint_dict(args.tenant, endpoint))
        return 0

    return await with_bus(config, body)


async def cmd_list(args: argparse.Namespace, config: Config) -> int:
    """``webhooks list [TENANT]``."""

    async def body(bus: Bus) -> int:
        tenants = (
            [await tenant_admin.get(bus, args.tenant)]
            if args.tenant
            else await tenant_admin.list_tenants(bus)
        )
        rows = [endpoint_dict(t.id, e) for t in tenants for e in t.webhooks]
        if args.json:
            print_json(rows)
            return 0
        for row in rows:
            status = row["status"]
            kinds = ",".join(row["kinds"]) or "all"
            state = status["state"] + (f" ({status['why']})" if status["why"] else "")
            print(
                f"{row['tenant']}\t{row['id']}\t{state}\tbatch={row['batch']}\t"
                f"kinds={kinds}\t{row['url']}"
            )
        return 0

    return await with_bus(config, body)


async def cmd_remove(args: argparse.Namespace, config: Config) -> int:
    """``webhooks remove TENANT ENDPOINT``."""
    from services.webhooks import admin  # noqa: PLC0415

    async def body(bus: Bus) -> int:
        await admin.remove(bus, args.tenant, args.endpoint, by=actor())
        print(f"endpoint {args.endpoint} of tenant {args.tenant} removed")
        return 0

    return await with_bus(config, body)


async def _state(args: argparse.Namespace, config: Config, state: TenantState, why: str) -> int:
    from services.webhooks import admin  # noqa: PLC0415

    async def body(bus: Bus) -> int:
        tenant = await tenant_admin.get(bus, args.tenant)
        changed = await admin.set_state(bus, tenant, args.endpoint, state, by=actor(), why=why)
        verb = "resumed" if state is TenantState.ACTIVE else "paused"
        print(f"endpoint {args.endpoint} {verb if changed else 'already ' + verb}")
        return 0

    return await with_bus(config, body)


async def cmd_pause(args: argparse.Namespace, config: Config) -> int:
    """``webhooks pause TENANT ENDPOINT``."""
    return await _state(args, config, TenantState.PAUSED, args.why)


async def cmd_resume(args: argparse.Namespace, config: Config) -> int:
    """``webhooks resume TENANT ENDPOINT``."""
    return await _state(args, config, TenantState.ACTIVE, "resumed by an operator")


async def cmd_test(args: argparse.Namespace, config: Config) -> int:
    """``webhooks test TENANT ENDPOINT``: one signed request with a ``test`` event."""
    from services.webhooks import admin  # noqa: PLC0415
    from services.webhooks.payload import Item, body  # noqa: PLC0415
    from services.webhooks.signing import headers, secret_key  # noqa: PLC0415
    from services.webhooks.stage import client_of  # noqa: PLC0415
    from shared.sealing import load_keyring, webhook_associated_data  # noqa: PLC0415

    cfg = load(config)
    keyring = load_keyring(config)

    async def run(bus: Bus) -> int:
        tenant = await tenant_admin.get(bus, args.tenant)
        endpoint = admin.find(tenant, args.endpoint)
        secret = keyring.open(
            endpoint.sealed_secret, webhook_associated_data(tenant.id, endpoint.id)
        ).decode()
        at = time.time()
        event_id = "evt_test_" + secrets.token_hex(12)
        obj = {
            "id": event_id,
            "type": "test",
            "timestamp": timestamp(at),
            "data": {"tenant": tenant.id, "endpoint": endpoint.id},
        }
        item = Item(event_id, json.dumps(obj, separators=(",", ":")).encode(), at)
        msg_id, data = body([item], endpoint.batch > 1)
        client = client_of(cfg)
        await client.start()
        try:
            outcome = await client.post(
                endpoint.url, data, headers(secret_key(secret), msg_id, int(at), data)
            )
        finally:
            await client.close()
        detail = f"HTTP {outcome.status}" if outcome.status else outcome.error
        print(f"{endpoint.id} {endpoint.url}: {outcome.result} ({detail})")
        return 0 if outcome.ok else 1

    return await with_bus(config, run)


async def cmd_replay(args: argparse.Namespace, config: Config) -> int:
    """``webhooks replay TENANT --since T [--until T] [--endpoint ID]``."""
    from services.webhooks import admin  # noqa: PLC0415
    from services.webhooks.replay import replay  # noqa: PLC0415
    from services.webhooks.retry import Schedule  # noqa: PLC0415

    schedule = Schedule(load(config))
    at = time.time()
    since = deadletters.parse_since(args.since, at)
    until = deadletters.parse_since(args.until, at) if args.until else at + 1

    async def body(bus: Bus) -> int:
        tenant = await tenant_admin.get(bus, args.tenant)
        if args.endpoint:
            admin.find(tenant, args.endpoint)
        await bus.ensure_topics(schedule.topics)
        count = await replay(
            bus, tenant, schedule.first, since=since, until=until, endpoint=args.endpoint
        )
        print(f"{count} deliveries queued for tenant {tenant.id} (sent by the webhooks stage)")
        return 0

    return await with_bus(config, body)


async def cmd_redrive(args: argparse.Namespace, config: Config) -> int:
    """``webhooks redrive``: dead-lettered deliveries back on the first tier, age reset."""
    from services.webhooks import admin  # noqa: PLC0415
    from services.webhooks.retry import Schedule, revived  # noqa: PLC0415

    first = Schedule(load(config)).first
    since = deadletters.parse_since(args.since, time.time()) if args.since else 0.0

    by = actor()

    def rewrite(_letter: DeadLetter, record: Record) -> list[OutRecord]:
        assert isinstance(record, WebhookAttempt)
        why = f"event {record.event_id} back on {first.name}"
        return [
            first.out(revived(record)),
            admin.webhook_event(record.tenant, record.endpoint, "redriven", by=by, why=why),
        ]

    def wanted(entry: deadletters.DeadEntry) -> bool:
        if not entry.topic.startswith(WEBHOOK_RETRY_PREFIX):
            return False
        record, _ = deadletters.decoded(entry)
        if not isinstance(record, WebhookAttempt):
            return True  # redrive refuses it with the reason, which the report shows
        return (not args.tenant or record.tenant == args.tenant) and (
            not args.endpoint or record.endpoint == args.endpoint
        )

    async def body(bus: Bus) -> int:
        await bus.ensure_topics([first.name])
        entries = deadletters.select(await deadletters.load(bus), Selection(since=since))
        chosen = [entry for entry in entries if wanted(entry)]
        results = await deadletters.redrive(bus, chosen, by=by, rewrite=rewrite)
        done = sum(1 for r in results if r.done)
        for result in results:
            if not result.done:
                print(f"offset {result.offset}: {result.why}")
        print(f"{done} webhook deliveries redriven to {first.name}")
        return 0 if done == len(results) else 1

    return await with_bus(config, body)
