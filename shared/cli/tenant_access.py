"""``postline tenant credential ...`` and ``postline tenant apikey ...``: a tenant's SMTP
logins and HTTP API keys. A password or key is printed once, when it is made, and never
again; the lists show names, prefixes and dates only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shared import tenant_access, tenant_admin
from shared.bus.base import Bus
from shared.cli.tenant import actor, with_bus
from shared.config import Config
from shared.errors import TenantInvalid


def add_access_commands(tenant: argparse._SubParsersAction[Any]) -> None:
    """Register ``tenant credential ...`` and ``tenant apikey ...``."""
    add_credential_commands(tenant)
    add_apikey_commands(tenant)


def add_credential_commands(sub: argparse._SubParsersAction[Any]) -> None:
    credential = sub.add_parser("credential", help="a tenant's SMTP AUTH logins")
    csub = credential.add_subparsers(dest="credential_command", required=True, metavar="COMMAND")
    add = csub.add_parser("add", help="add a login; prints its password once")
    add.add_argument("id", help="the tenant")
    add.add_argument("name", help="the AUTH user name (unique across tenants)")
    add.add_argument(
        "--domain", action="append", default=[], help="only this sending domain (repeatable)"
    )
    _password_option(add)
    add.set_defaults(handler=cmd_credential_add)
    listing = csub.add_parser("list", help="a tenant's logins (never their secrets)")
    listing.add_argument("id")
    listing.set_defaults(handler=cmd_credential_list)
    remove = csub.add_parser("remove", help="remove a login")
    remove.add_argument("id")
    remove.add_argument("name")
    remove.set_defaults(handler=cmd_credential_remove)
    rotate = csub.add_parser("rotate", help="a new password for a login; prints it once")
    rotate.add_argument("id")
    rotate.add_argument("name")
    _password_option(rotate)
    rotate.set_defaults(handler=cmd_credential_rotate)


def add_apikey_commands(sub: argparse._SubParsersAction[Any]) -> None:
    apikey = sub.add_parser("apikey", help="a tenant's HTTP API keys")
    asub = apikey.add_subparsers(dest="apikey_command", required=True, metavar="COMMAND")
    add = asub.add_parser("add", help="a new key; printed once, stored hashed")
    add.add_argument("id")
    add.add_argument("--name", default="", help="a label (what the key is for)")
    add.set_defaults(handler=cmd_apikey_add)
    listing = asub.add_parser("list", help="a tenant's keys by their visible prefix")
    listing.add_argument("id")
    listing.set_defaults(handler=cmd_apikey_list)
    revoke = asub.add_parser("revoke", help="revoke a key (by its prefix, pl_xxxxxxxx)")
    revoke.add_argument("id")
    revoke.add_argument("key_id", metavar="KEY_ID")
    revoke.set_defaults(handler=cmd_apikey_revoke)


def _password_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-file",
        metavar="PATH",
        help="the first line of PATH ('-': standard input); default: a generated password",
    )


def read_password(path: str | None) -> str | None:
    """The first line of ``path`` (``-``: standard input), or ``None`` to generate one."""
    if path is None:
        return None
    if path == "-":
        return sys.stdin.readline().rstrip("\r\n")
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TenantInvalid(f"--password-file {path}: cannot read: {exc.strerror}") from exc
    return lines[0] if lines else ""


async def cmd_credential_add(args: argparse.Namespace, config: Config) -> int:
    """``tenant credential add ID NAME``: prints a generated password once."""
    given = read_password(args.password_file)

    async def body(bus: Bus) -> int:
        _, password = await tenant_access.add_credential(
            bus, args.id, args.name, password=given, domains=tuple(args.domain), by=actor()
        )
        print(f"credential {args.name} added to tenant {args.id}")
        if given is None:
            print(f"password: {password}\n(shown once: store it now)")
        return 0

    return await with_bus(config, body)


async def cmd_credential_rotate(args: argparse.Namespace, config: Config) -> int:
    """``tenant credential rotate ID NAME``: prints the new password once."""
    given = read_password(args.password_file)

    async def body(bus: Bus) -> int:
        _, password = await tenant_access.rotate_credential(
            bus, args.id, args.name, password=given, by=actor()
        )
        print(f"credential {args.name} of tenant {args.id} has a new password")
        if given is None:
            print(f"password: {password}\n(shown once: store it now)")
        return 0

    return await with_bus(config, body)


async def cmd_credential_list(args: argparse.Namespace, config: Config) -> int:
    """``tenant credential list ID``: one JSON object per login, no secrets."""

    async def body(bus: Bus) -> int:
        for row in tenant_admin.public_view(await tenant_admin.get(bus, args.id))["credentials"]:
            print(json.dumps(row, sort_keys=True))
        return 0

    return await with_bus(config, body)


async def cmd_credential_remove(args: argparse.Namespace, config: Config) -> int:
    """``tenant credential remove ID NAME``."""

    async def body(bus: Bus) -> int:
        removed = await tenant_access.remove_credential(bus, args.id, args.name, by=actor())
        print(f"credential {args.name} {'removed' if removed else 'not present (nothing to do)'}")
        return 0

    return await with_bus(config, body)


async def cmd_apikey_add(args: argparse.Namespace, config: Config) -> int:
    """``tenant apikey add ID``: prints the key once."""

    async def body(bus: Bus) -> int:
        record, key = await tenant_access.add_api_key(bus, args.id, name=args.name, by=actor())
        print(f"API key {record.id} added to tenant {args.id}")
        print(f"key: {key}\n(shown once: store it now)")
        return 0

    return await with_bus(config, body)


async def cmd_apikey_list(args: argparse.Namespace, config: Config) -> int:
    """``tenant apikey list ID``: one JSON object per key (prefix, name, dates)."""

    async def body(bus: Bus) -> int:
        for row in tenant_admin.public_view(await tenant_admin.get(bus, args.id))["api_keys"]:
            print(json.dumps(row, sort_keys=True))
        return 0

    return await with_bus(config, body)


async def cmd_apikey_revoke(args: argparse.Namespace, config: Config) -> int:
    """``tenant apikey revoke ID KEY_ID``."""

    async def body(bus: Bus) -> int:
        await tenant_access.revoke_api_key(bus, args.id, args.key_id, by=actor())
        print(f"API key {args.key_id} of tenant {args.id} revoked")
        return 0

    return await with_bus(config, body)
