"""``postline tenant ...``: the businesses Postline relays for, from the command line.

Owns argument definitions and printing; every change is ``shared.tenant_admin``'s or
``shared.tenant_access``'s, so the CLI and the admin HTTP API behave alike. The bus is opened
as a client (never the embedded file's owner, on Kafka with an instance id of its own), so the
commands work beside a running ``postline run`` and against Kafka. Errors are
``TenantError``s: ``shared.cli.main`` prints them as one line and exits 1. Every command is
safe to run again: one that finds its work done says so and exits 0.

Secrets (a generated password, a new API key) are printed once, on standard output, and
never again: ``show`` and the lists never print them, nor their hashes.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from shared import tenant_admin
from shared.bus.base import Bus
from shared.config import Config
from shared.errors import TenantInvalid
from shared.wire.records import TenantState

#: ``--track-*`` flags -> the tracking setting they set (``tenant set``, ``tenant domain set``).
TRACKING_FLAGS = {
    "track_opens": "opens",
    "track_clicks": "clicks",
    "track_text_clicks": "text_clicks",
    "tracking_host": "host",
}

#: ``tenant set`` flags -> the limit they set (values are checked by ``shared.tenant_fields``).
LIMIT_FLAGS = {
    "per_second": "per_second",
    "burst": "burst",
    "per_hour": "per_hour",
    "per_day": "per_day",
    "per_month": "per_month",
    "recipients": "recipients_per_message",
    "message_size": "message_size",
    "sessions": "sessions",
}


def add_tenant_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``tenant ...``, with the tenant commands of their own modules (``tenant
    credential|apikey``, ``tenant domain``, ``tenant usage``). Handlers take ``(args, config)``."""
    # Those modules import this one's helpers, so they are imported here, not at the top.
    from shared.cli.tenant_access import add_access_commands  # noqa: PLC0415
    from shared.cli.tenant_domains import add_domain_commands  # noqa: PLC0415
    from shared.cli.tenant_usage import add_usage_command  # noqa: PLC0415

    tenant = commands.add_parser("tenant", help="manage tenants (the businesses sending)")
    sub: argparse._SubParsersAction[Any] = tenant.add_subparsers(
        dest="tenant_command", required=True, metavar="COMMAND"
    )
    add = sub.add_parser("add", help="add a tenant (nothing happens if it exists)")
    add.add_argument("id", help="short id: a-z, 0-9 and '-' (1-63 characters)")
    add.add_argument("--name", default="", help="display name")
    add.set_defaults(handler=cmd_add)
    show = sub.add_parser("show", help="one tenant as JSON (never secrets)")
    show.add_argument("id")
    show.set_defaults(handler=cmd_show)
    listing = sub.add_parser("list", help="every tenant, one line each")
    listing.add_argument("--json", action="store_true", help="one JSON object per tenant")
    listing.set_defaults(handler=cmd_list)
    _add_set(sub)
    for verb, help_text in (
        ("pause", "stop a tenant's mail for now"),
        ("disable", "stop a tenant's mail for good (closed, abuse)"),
    ):
        state = sub.add_parser(verb, help=help_text)
        state.add_argument("id")
        state.add_argument("--why", required=True, help="the reason (the refused client sees it)")
        state.set_defaults(handler=cmd_state, state=verb)
    resume = sub.add_parser("resume", help="let a paused or disabled tenant send again")
    resume.add_argument("id")
    resume.set_defaults(handler=cmd_state, state="resume", why="")
    remove = sub.add_parser("remove", help="remove a tenant with its credentials and keys")
    remove.add_argument("id")
    remove.set_defaults(handler=cmd_remove)
    add_access_commands(sub)
    add_domain_commands(sub)
    add_usage_command(sub)


def _add_set(sub: argparse._SubParsersAction[Any]) -> None:
    change = sub.add_parser("set", help="change name, limits, IP pool or settings")
    change.add_argument("id")
    change.add_argument("--name", help="display name")
    change.add_argument("--ip-pool", metavar="POOL", help="deliverer source pool ('' = default)")
    change.add_argument(
        "--bulk-ip-pool", metavar="POOL", help="source pool of bulk mail ('' = [pools] bulk)"
    )
    change.add_argument(
        "--paused-reply", choices=["reject", "defer"], help="while paused: 550 or 451"
    )
    change.add_argument(
        "--scanning",
        choices=["off", "tag", "enforce", ""],
        help="content scanning of its mail ('' = [ingest.scanning] mode)",
    )
    limits = change.add_argument_group("limits (0 removes a limit)")
    limits.add_argument("--per-second", metavar="N", help="messages per second (decimal)")
    limits.add_argument("--burst", metavar="N", help="messages at once above the rate")
    for flag in ("per-hour", "per-day", "per-month"):
        limits.add_argument(f"--{flag}", metavar="N", help=f"messages {flag.replace('-', ' ')}")
    limits.add_argument("--recipients", metavar="N", help="recipients per message")
    limits.add_argument("--message-size", metavar="SIZE", help="largest message, e.g. 25MiB")
    limits.add_argument("--sessions", metavar="N", help="concurrent SMTP sessions")
    change.add_argument(
        "--reputation",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the tenant's own reputation threshold (repeatable): bounce_warning, "
        "bounce_pause, complaint_warning, complaint_pause, block_warning, block_pause as "
        "0.08 or 8%%, min_messages; 0 keeps the global [reputation] level",
    )
    change.add_argument(
        "--content",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="the tenant's own attachment rule (repeatable): blocked_extensions and "
        "allowed_extensions as 'exe,msi' (added to / taken off [ingest.content]'s list; '' "
        "clears), max_attachment_size as 10MiB, max_attachments, signed_changes as refuse "
        "or allow; empty or 0 keeps the global [ingest.content] value",
    )
    change.add_argument(
        "--require-tls",
        choices=["on", "off", "inherit"],
        help="its mail goes only over TLS with a verified certificate, else waits "
        "(X-Postline-Require-TLS of a message decides first; inherit: no tenant policy)",
    )
    change.add_argument(
        "--retention-days",
        metavar="DAYS",
        help="days the reporting store keeps its events and message metadata "
        "(1-3650; 0 = [store] retention_days)",
    )
    add_tracking_flags(change, "the tenant's mail")
    change.set_defaults(handler=cmd_set)


def add_tracking_flags(parser: argparse.ArgumentParser, whose: str) -> None:
    """The ``--track-*`` flags of ``tenant set`` and ``tenant domain set``."""
    group = parser.add_argument_group(
        f"open and click tracking of {whose} (inherit: the level above decides)"
    )
    switches = ["on", "off", "inherit"]
    group.add_argument("--track-opens", choices=switches, help="add the open pixel to HTML")
    group.add_argument("--track-clicks", choices=switches, help="rewrite the links of HTML")
    group.add_argument(
        "--track-text-clicks", choices=switches, help="also rewrite bare URLs in plain text"
    )
    group.add_argument(
        "--tracking-host",
        metavar="HOST",
        help="the host tracked links and the pixel use, a CNAME to Postline's tracking "
        "endpoint ('' = inherit)",
    )


def tracking_values(args: argparse.Namespace) -> dict[str, str]:
    """The tracking settings the ``--track-*`` flags give (checked by ``tenant_fields``)."""
    return {
        setting: getattr(args, flag)
        for flag, setting in TRACKING_FLAGS.items()
        if getattr(args, flag) is not None
    }


def client_bus(config: Config) -> Bus:
    """A bus for an admin command: a client beside a running ``postline run`` (embedded),
    with an instance id of its own on Kafka, so it never fences a stage's producer."""
    from shared.bus.factory import open_bus  # noqa: PLC0415  (imports an adapter's library)

    core = config.core
    instance = f"cli-{os.getpid()}-{secrets.token_hex(4)}"
    runtime = msgspec.structs.replace(core.runtime, instance=instance)
    config = Config(msgspec.structs.replace(core, runtime=runtime), config.source, {})
    return open_bus(config, owner=False)


def actor() -> str:
    """Who is changing tenants, for the audit trail: ``cli:<login name>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no user name in the environment or the password database
        return f"cli:uid-{os.getuid()}"


async def with_bus(config: Config, body: Callable[[Bus], Awaitable[int]]) -> int:
    """Run ``body`` with a started client bus, closed after."""
    bus = client_bus(config)
    await bus.start()
    try:
        await tenant_admin.ensure_topics(bus)
        return await body(bus)
    finally:
        await bus.close()


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


async def cmd_add(args: argparse.Namespace, config: Config) -> int:
    """``tenant add ID``."""

    async def body(bus: Bus) -> int:
        _, created = await tenant_admin.add(bus, args.id, name=args.name, by=actor())
        print(f"tenant {args.id} {'added' if created else 'exists already (unchanged)'}")
        return 0

    return await with_bus(config, body)


async def cmd_show(args: argparse.Namespace, config: Config) -> int:
    """``tenant show ID``."""

    async def body(bus: Bus) -> int:
        print_json(tenant_admin.public_view(await tenant_admin.get(bus, args.id)))
        return 0

    return await with_bus(config, body)


async def cmd_list(args: argparse.Namespace, config: Config) -> int:
    """``tenant list``: id, state, counts and name, one tenant per line."""

    async def body(bus: Bus) -> int:
        for tenant in await tenant_admin.list_tenants(bus):
            if args.json:
                print(json.dumps(tenant_admin.public_view(tenant), sort_keys=True))
                continue
            print(
                f"{tenant.id:<20} {tenant.status.state:<8} domains={len(tenant.domains)} "
                f"credentials={len(tenant.credentials)} "
                f"apikeys={sum(1 for k in tenant.api_keys if not k.revoked_at)} {tenant.name}"
            )
        return 0

    return await with_bus(config, body)


async def cmd_set(args: argparse.Namespace, config: Config) -> int:
    """``tenant set ID --per-hour N ...``."""
    limits = {
        field: getattr(args, flag)
        for flag, field in LIMIT_FLAGS.items()
        if getattr(args, flag) is not None
    }
    settings: dict[str, object] = {"paused_reply": args.paused_reply} if args.paused_reply else {}
    if args.reputation:
        settings["reputation"] = _pairs(args.reputation, "--reputation")
    if args.bulk_ip_pool is not None:
        settings["bulk_ip_pool"] = args.bulk_ip_pool
    if args.content:
        settings["content"] = _pairs(args.content, "--content")
    if args.scanning is not None:
        settings["scanning"] = args.scanning
    if args.require_tls is not None:
        settings["require_tls"] = args.require_tls
    if tracking := tracking_values(args):
        settings["tracking"] = tracking
    if args.retention_days is not None:
        settings["retention_days"] = args.retention_days

    async def body(bus: Bus) -> int:
        before = await tenant_admin.get(bus, args.id)
        after = await tenant_admin.set_fields(
            bus,
            args.id,
            name=args.name,
            ip_pool=args.ip_pool,
            limits=limits,
            settings=settings,
            by=actor(),
        )
        changed = after.revision != before.revision
        print(f"tenant {args.id} {'changed' if changed else 'unchanged'}")
        return 0

    return await with_bus(config, body)


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, setting = value.partition("=")
        if not sep or not key.strip():
            raise TenantInvalid(f"{flag} {value!r}: expected KEY=VALUE")
        pairs[key.strip()] = setting.strip()
    return pairs


async def cmd_state(args: argparse.Namespace, config: Config) -> int:
    """``tenant pause|resume|disable ID``."""
    state = {"pause": TenantState.PAUSED, "disable": TenantState.DISABLED}.get(
        args.state, TenantState.ACTIVE
    )

    async def body(bus: Bus) -> int:
        tenant = await tenant_admin.set_state(bus, args.id, state, by=actor(), why=args.why)
        print(f"tenant {args.id} {tenant.status.state}")
        return 0

    return await with_bus(config, body)


async def cmd_remove(args: argparse.Namespace, config: Config) -> int:
    """``tenant remove ID``."""

    async def body(bus: Bus) -> int:
        removed = await tenant_admin.remove(bus, args.id, by=actor())
        print(f"tenant {args.id} {'removed' if removed else 'not present (nothing to do)'}")
        return 0

    return await with_bus(config, body)
