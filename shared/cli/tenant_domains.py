"""``postline tenant domain add|verify|list|remove|pause|resume|disable|pool|set``: a
tenant's sending domains.

Owns the arguments and the printing; the work is ``shared.tenant_domains``'s (keys, records,
checks) and ``shared.tenant_admin``'s (the change and its audit event). ``add`` needs the KEK
(``secrets.kek_file``, the same file the signers mount) to seal the new keys, and prints
every DNS record to publish; ``verify`` asks DNS (``--nameserver`` for a split horizon or a
test server) and exits 1 while a record is missing or wrong. ``pause``/``resume`` act on
one domain (the reputation stage pauses a domain whose own rates ran high; the tenant's
other domains keep sending). ``pool`` sends one domain's mail from its own source pool;
``set`` changes its open and click tracking over the tenant's (``--track-*``, as ``tenant
set`` has them).
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from shared import tenant_admin
from shared.bus.base import Bus
from shared.cli.tenant import actor, add_tracking_flags, tracking_values, with_bus
from shared.config import Config
from shared.errors import TenantInvalid, TenantNotFound
from shared.wire.records import TenantState, TrackingSettings

if TYPE_CHECKING:
    from shared.tenant_domains import DomainPolicy

# The commands import shared.tenant_domains, shared.dnscheck and shared.sealing (dnspython,
# cryptography) when they run: building the parser must not load them for every command.


def add_domain_commands(tenant: argparse._SubParsersAction[Any]) -> None:
    """Register ``tenant domain ...`` under the ``tenant`` command's sub-commands."""
    domain = tenant.add_parser("domain", help="a tenant's sending domains and their DNS")
    sub = domain.add_subparsers(dest="domain_command", required=True, metavar="COMMAND")
    add = sub.add_parser("add", help="add a domain with new DKIM keys; prints the DNS records")
    add.add_argument("id", help="the tenant")
    add.add_argument("domain")
    add.add_argument("--bounce-domain", default="", help="return-path host (bounces.DOMAIN)")
    add.add_argument("--selector", default="", help="selector stem (default pl<yyyymm>)")
    _dns_options(add)
    add.set_defaults(handler=cmd_add)
    verify = sub.add_parser("verify", help="check the domain's DNS; mark it verified")
    verify.add_argument("id")
    verify.add_argument("domain")
    _dns_options(verify)
    verify.set_defaults(handler=cmd_verify)
    listing = sub.add_parser("list", help="a tenant's domains")
    listing.add_argument("id")
    listing.set_defaults(handler=cmd_list)
    remove = sub.add_parser("remove", help="remove a domain and its keys")
    remove.add_argument("id")
    remove.add_argument("domain")
    remove.set_defaults(handler=cmd_remove)
    for verb, help_text in (
        ("pause", "stop one domain's mail for now (the tenant's others keep sending)"),
        ("disable", "stop one domain's mail for good"),
    ):
        state = sub.add_parser(verb, help=help_text)
        state.add_argument("id")
        state.add_argument("domain")
        state.add_argument("--why", required=True, help="the reason (the refused client sees it)")
        state.set_defaults(handler=cmd_state, state=verb)
    resume = sub.add_parser("resume", help="let a paused or disabled domain send again")
    resume.add_argument("id")
    resume.add_argument("domain")
    resume.set_defaults(handler=cmd_state, state="resume", why="")
    pool = sub.add_parser("pool", help="send one domain's mail from a source pool ([pools])")
    pool.add_argument("id")
    pool.add_argument("domain")
    pool.add_argument("pool", help="a pool name ('' = the tenant's pool)")
    pool.set_defaults(handler=cmd_pool)
    change = sub.add_parser("set", help="change one domain's open and click tracking")
    change.add_argument("id")
    change.add_argument("domain")
    add_tracking_flags(change, "this domain's mail, over the tenant's")
    change.set_defaults(handler=cmd_set)


def _dns_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nameserver", default="", metavar="HOST[:PORT]", help="ask this server, not the system's"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per lookup")


def _policy(config: Config) -> DomainPolicy:
    from shared.tenant_domains import DomainPolicy  # noqa: PLC0415

    return DomainPolicy.from_signer_section(config.core.signer)


async def cmd_add(args: argparse.Namespace, config: Config) -> int:
    """``tenant domain add T D``: new keys, stored sealed; the records to publish."""
    from shared.dnscheck import Lookup, make_resolver  # noqa: PLC0415
    from shared.sealing import load_keyring  # noqa: PLC0415
    from shared.tenant_domains import add_domain, dns_records, has_dmarc  # noqa: PLC0415

    keyring = load_keyring(config)
    lookup = Lookup(make_resolver(args.nameserver, args.timeout))

    async def body(bus: Bus) -> int:
        added = await add_domain(
            bus,
            keyring,
            args.id,
            args.domain,
            now=time.time(),
            by=actor(),
            bounce_domain=args.bounce_domain,
            selector=args.selector,
        )
        dmarc = await has_dmarc(lookup, added.name)
        print(f"domain {added.name} of tenant {args.id}: publish these DNS records, then run")
        print(f"  postline tenant domain verify {args.id} {added.name}")
        for record in dns_records(added, _policy(config), has_dmarc=dmarc):
            print(f"; {record.purpose}")
            print(record.zone_line())
        return 0

    return await with_bus(config, body)


async def cmd_verify(args: argparse.Namespace, config: Config) -> int:
    """``tenant domain verify T D``: every record checked; verified when none fails."""
    from shared.dnscheck import Lookup, format_table, has_problems, make_resolver  # noqa: PLC0415
    from shared.tenant_domains import domain_name, find, mark_verified, verify_rows  # noqa: PLC0415

    lookup = Lookup(make_resolver(args.nameserver, args.timeout))
    name = domain_name(args.domain)

    async def body(bus: Bus) -> int:
        domain = find(await tenant_admin.get(bus, args.id), name)
        if domain is None:
            raise TenantNotFound(f"tenant {args.id!r} has no domain {name!r}")
        rows = await verify_rows(lookup, domain, _policy(config))
        print(format_table(rows))
        ok = not has_problems(rows)
        await mark_verified(bus, args.id, name, verified=ok, now=time.time(), by=actor())
        print(f"{name}: {'verified' if ok else 'NOT verified'}")
        return 0 if ok else 1

    return await with_bus(config, body)


async def cmd_list(args: argparse.Namespace, config: Config) -> int:
    """``tenant domain list T``."""

    async def body(bus: Bus) -> int:
        for domain in (await tenant_admin.get(bus, args.id)).domains:
            selectors = ",".join(k.selector for k in domain.dkim)
            state = "verified" if domain.verified else "unverified"
            status = domain.status.state + (f" ({domain.status.why})" if domain.status.why else "")
            tracking = _tracking_text(domain.tracking)
            print(f"{domain.name:<40} {state:<10} selectors={selectors} {status}{tracking}")
        return 0

    return await with_bus(config, body)


async def cmd_remove(args: argparse.Namespace, config: Config) -> int:
    """``tenant domain remove T D``."""
    from shared.tenant_domains import remove_domain  # noqa: PLC0415

    async def body(bus: Bus) -> int:
        removed = await remove_domain(bus, args.id, args.domain, by=actor())
        print(f"domain {args.domain} {'removed' if removed else 'was not there (unchanged)'}")
        return 0

    return await with_bus(config, body)


async def cmd_state(args: argparse.Namespace, config: Config) -> int:
    """``tenant domain pause|resume|disable T D``."""
    from shared.tenant_domains import domain_name, find  # noqa: PLC0415

    state = {"pause": TenantState.PAUSED, "disable": TenantState.DISABLED}.get(
        args.state, TenantState.ACTIVE
    )
    name = domain_name(args.domain)

    async def body(bus: Bus) -> int:
        tenant = await tenant_admin.set_domain_state(
            bus, args.id, name, state, by=actor(), why=args.why
        )
        domain = find(tenant, name)
        print(f"domain {name} of tenant {args.id} {domain.status.state if domain else state}")
        return 0

    return await with_bus(config, body)


async def cmd_pool(args: argparse.Namespace, config: Config) -> int:
    """``tenant domain pool T D POOL``."""
    from shared.tenant_domains import domain_name  # noqa: PLC0415

    name = domain_name(args.domain)

    async def body(bus: Bus) -> int:
        await tenant_admin.set_domain_pool(bus, args.id, name, args.pool, by=actor())
        pool = args.pool or "of the tenant"
        print(f"domain {name} of tenant {args.id} sends from pool {pool}")
        return 0

    return await with_bus(config, body)


async def cmd_set(args: argparse.Namespace, config: Config) -> int:
    """``tenant domain set T D --track-opens on ...``."""
    from shared.tenant_domains import domain_name, find  # noqa: PLC0415

    values = tracking_values(args)
    if not values:
        raise TenantInvalid(
            "nothing to set: give --track-opens, --track-clicks, --track-text-clicks or "
            "--tracking-host"
        )
    name = domain_name(args.domain)

    async def body(bus: Bus) -> int:
        before = await tenant_admin.get(bus, args.id)
        after = await tenant_admin.set_domain_tracking(bus, args.id, name, values, by=actor())
        domain = find(after, name)
        changed = "changed" if after.revision != before.revision else "unchanged"
        shown = _tracking_text(domain.tracking) if domain else ""
        print(f"domain {name} of tenant {args.id} {changed}:{shown or ' tracking inherited'}")
        return 0

    return await with_bus(config, body)


def _tracking_text(tracking: TrackingSettings) -> str:
    """`` tracking=opens:on,clicks:off host=...`` for what the domain sets ("" for none)."""
    words = {True: "on", False: "off"}
    switches = [
        f"{name}:{words[value]}"
        for name, value in (
            ("opens", tracking.opens),
            ("clicks", tracking.clicks),
            ("text_clicks", tracking.text_clicks),
        )
        if value is not None
    ]
    text = f" tracking={','.join(switches)}" if switches else ""
    return text + (f" tracking_host={tracking.host}" if tracking.host else "")
