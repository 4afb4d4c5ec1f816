"""``postline credential list|hold|release``: held credentials (AUTH logins, API key ids).

A held credential's mail is refused by every ingest replica with ``451 4.7.1`` and the
reason, until released. The reputation stage holds a credential whose sending rises far
over its own baseline (docs/compromised-accounts.md); an operator may hold one too (a
leaked password reported by the customer). Each command publishes the hold, or its release
(a tombstone of the hold on ``postline.control``), with a ``credential`` event naming who and
why, in one atomic publish (``shared.credential_holds``). A release also tells the
reputation stage to start the credential's current bucket afresh, so the burst that caused
the hold does not hold it again at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from shared.bus.base import Bus
from shared.cli.tenant import actor, with_bus
from shared.config import Config
from shared.credential_holds import (
    HELD,
    RELEASED,
    credential_event,
    hold_records,
    read_holds,
    release_records,
)
from shared.errors import CredentialHoldError
from shared.queue.actions import check_why
from shared.wire.records import ControlAction, now
from shared.wire.topics import CONTROL, EVENTS

#: ``stage`` of the events this command publishes.
VIA = "cli"


def add_credential_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``credential list|hold|release``."""
    credential = commands.add_parser(
        "credential", help="held credentials (compromised-account detection): list, hold, release"
    )
    sub = credential.add_subparsers(dest="credential_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="the credentials held now, with who held them and why")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=cmd_list)
    hold = sub.add_parser("hold", help="refuse a credential's mail (451) until released")
    hold.add_argument("name", help="the AUTH login or API key id")
    hold.add_argument("--why", required=True, help="the reason, kept with the hold")
    hold.set_defaults(handler=cmd_hold)
    release = sub.add_parser("release", help="let a held credential send again")
    release.add_argument("name", help="the held login or API key id")
    release.add_argument("--why", default="", help="the reason, kept in the audit event")
    release.set_defaults(handler=cmd_release)


async def hold(bus: Bus, name: str, why: str, by: str) -> ControlAction:
    """Hold ``name`` (refused when already held: the first reason stays)."""
    reason = check_why(why)
    if not name or not reason:
        raise CredentialHoldError("a hold needs the credential's name and a reason (--why)")
    await bus.ensure_topics([CONTROL.name, EVENTS.name])
    if name in await read_holds(bus):
        raise CredentialHoldError(f"credential {name} is already held (postline credential list)")
    event = credential_event(name, HELD, by=by, why=reason, at=now(), stage=VIA)
    records = hold_records(event)
    await bus.publish(records)
    return CONTROL.decode(records[0].value or b"")


async def release(bus: Bus, name: str, why: str, by: str) -> None:
    """Release ``name``; refused when it is not held (a typo would otherwise pass)."""
    reason = check_why(why)
    await bus.ensure_topics([CONTROL.name, EVENTS.name])
    if name not in await read_holds(bus):
        raise CredentialHoldError(f"credential {name} is not held (postline credential list)")
    event = credential_event(name, RELEASED, by=by, why=reason, at=now(), stage=VIA)
    await bus.publish(release_records(event))


async def cmd_list(args: argparse.Namespace, config: Config) -> int:
    """List the holds in force."""

    async def body(bus: Bus) -> int:
        holds = sorted((await read_holds(bus)).items(), key=lambda item: item[1].at)
        for name, action in holds:
            if args.json:
                row = {"credential": name, "since": action.at, "by": action.by, "why": action.why}
                print(json.dumps(row, sort_keys=True, ensure_ascii=False))
            else:
                print(f"{name:<32} since {when(action.at)} UTC  by {action.by}  {action.why}")
        if not holds and not args.json:
            print("no credential held")
        return 0

    return await with_bus(config, body)


async def cmd_hold(args: argparse.Namespace, config: Config) -> int:
    """Hold a credential."""
    done = f"held {args.name}: every ingest refuses its mail with 451 until released"
    return await _act(config, hold, args, done)


async def cmd_release(args: argparse.Namespace, config: Config) -> int:
    """Release a credential."""
    return await _act(config, release, args, f"released {args.name}: it may send again")


async def _act(
    config: Config,
    action: Callable[[Bus, str, str, str], Awaitable[object]],
    args: argparse.Namespace,
    done: str,
) -> int:
    async def body(bus: Bus) -> int:
        try:
            await action(bus, args.name, args.why, actor())
        except CredentialHoldError as exc:
            print(f"postline: {exc}", file=sys.stderr)
            return 1
        print(done)
        return 0

    return await with_bus(config, body)


def when(at: float) -> str:
    """A time for people (UTC, to the second)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))
