"""``postline quarantine list|show|release|delete``: the messages on ``postline.quarantine``.

Owns argument definitions and printing; what is listed and what an action does is
``shared.quarantine``'s, so the CLI and the admin HTTP API (the bouncer's
``/admin/quarantine``) behave alike. The bus is opened as a client
(``shared.cli.tenant.client_bus``): the commands work beside a running ``postline run`` and
against Kafka. A message is named by its id or a unique prefix of at least 6 characters. An
unknown, ambiguous or already handled id is one line on stderr and exit 1, with nothing
published (every id of a release or delete is resolved first); exit 3 when some named message
was left as it was (a record that does not decode cannot be released).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from shared import quarantine
from shared.bus.base import Bus
from shared.cli.tenant import actor, client_bus
from shared.config import Config
from shared.errors import QuarantineError, QuarantineInvalid
from shared.eventlog import format_time
from shared.quarantine import QuarantineEntry, Result
from shared.wire.records import now

#: Exit code when an action left some named message as it was.
EXIT_PARTLY = 3


def add_quarantine_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``quarantine ...``; handlers take ``(args, config)``."""
    held = commands.add_parser(
        "quarantine", help="messages the content scanner held: list, show, release, delete"
    )
    sub = held.add_subparsers(dest="quarantine_command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help="the messages held, oldest first")
    listing.add_argument("--tenant", default="", help="only this tenant's")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=cmd_list)
    show = sub.add_parser("show", help="one message: the verdict, the envelope, the headers")
    show.add_argument("id", help="its message id or a unique prefix")
    show.add_argument("--json", action="store_true", help="as one JSON object")
    show.add_argument("--raw", action="store_true", help="write the message's bytes, nothing else")
    show.set_defaults(handler=cmd_show)
    release = sub.add_parser("release", help="send messages on: to the signer, as if just accepted")
    release.add_argument("ids", nargs="+", metavar="ID")
    release.add_argument("--why", default="", help="the reason, kept in the event")
    release.set_defaults(handler=cmd_release)
    delete = sub.add_parser("delete", help="remove messages unsent (no DSN goes back)")
    delete.add_argument("ids", nargs="+", metavar="ID")
    delete.add_argument("--why", default="", help="the reason, kept in the event")
    delete.set_defaults(handler=cmd_delete)


async def _run(config: Config, body: Callable[[Bus, list[QuarantineEntry]], Awaitable[int]]) -> int:
    """``body`` with a started client bus and the quarantine as it is now; a
    ``QuarantineError`` (an unknown or ambiguous id) is one line on stderr and exit 1."""
    try:
        bus = client_bus(config)
        await bus.start()
        try:
            return await body(bus, await quarantine.load(bus))
        finally:
            await bus.close()
    except QuarantineError as exc:
        print(f"postline quarantine: {exc}", file=sys.stderr)
        return 1


async def cmd_list(args: argparse.Namespace, config: Config) -> int:
    """``quarantine list``: one line per message, oldest first."""

    async def body(_bus: Bus, entries: list[QuarantineEntry]) -> int:
        chosen = quarantine.select(entries, tenant=args.tenant)
        current = now()
        for entry in chosen:
            if args.json:
                print(json.dumps(quarantine.entry_dict(entry), sort_keys=True))
            else:
                print(format_entry(entry, current))
        if not args.json and not chosen:
            print("no quarantined messages" + (f" of tenant {args.tenant}" if args.tenant else ""))
        return 0

    return await _run(config, body)


def age(at: float, current: float) -> str:
    """How long ago ``at`` was, in the largest unit that fits."""
    seconds = max(0.0, current - at)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def format_entry(entry: QuarantineEntry, current: float) -> str:
    """One readable line: id, age, tenant, sender, recipients, score, action, top symbols."""
    row = quarantine.entry_dict(entry)
    if entry.record is None:
        return f"{entry.id:<32}  -  not decodable: {entry.problem}"
    symbols = ",".join(row["top_symbols"]) or "-"
    return (
        f"{entry.id:<32}  {age(entry.at, current):>4}  {row['tenant'] or '-'}  "
        f"{row['sender'] or '<>'}  rcpts={row['recipients']}  "
        f"score={row['score']:.2f}/{row['required']:.2f}  "
        f"action={row['action'] or '-'}  {symbols}"
    )


async def cmd_show(args: argparse.Namespace, config: Config) -> int:
    """``quarantine show ID``: the verdict, envelope and headers; ``--raw``: the bytes."""

    async def body(_bus: Bus, entries: list[QuarantineEntry]) -> int:
        entry = quarantine.find(entries, args.id)
        if args.raw:
            if entry.record is None:
                raise QuarantineInvalid(f"{entry.id}: {entry.problem}")
            sys.stdout.buffer.write(entry.record.submission.data)
            sys.stdout.buffer.flush()
            return 0
        detail = quarantine.detail_dict(entry)
        if args.json:
            print(json.dumps(detail, indent=2, sort_keys=True, ensure_ascii=False))
            return 0
        print("\n".join(show_lines(detail)))
        return 0

    return await _run(config, body)


def show_lines(detail: dict[str, Any]) -> list[str]:
    """``show``'s text: one field a line, then the symbols and the header block."""
    if "problem" in detail:
        return [f"id           {detail['id']}", f"not decodable: {detail['problem']}"]
    client = detail["client"]
    lines = [
        f"id           {detail['id']}",
        f"quarantined  {format_time(detail['at'])}",
        f"received     {format_time(detail['received_at'])}",
        f"tenant       {detail['tenant'] or '-'}",
        f"sender       {detail['sender'] or '<>'}",
        f"recipients   {', '.join(detail['rcpt_to'])}",
        f"size         {detail['size']} bytes",
        f"client       {client['ip']} helo={client['helo'] or '-'} "
        f"auth={client['auth_user'] or '-'}",
        f"scanner      {detail['scanner']}: {detail['action'] or '-'}, "
        f"score {detail['score']:.2f} (threshold {detail['required']:.2f})",
        f"reference    {detail['reference'] or '-'}",
        "symbols",
    ]
    lines += [f"  {name:<30} {score:>7.2f}" for name, score in detail["symbols"].items()]
    lines += ["headers", detail["headers"]]
    return lines


async def cmd_release(args: argparse.Namespace, config: Config) -> int:
    """``quarantine release ID...``: to the signer; exit 3 when some could not go."""

    async def body(bus: Bus, entries: list[QuarantineEntry]) -> int:
        chosen = quarantine.resolve(entries, args.ids)
        return _report("released", await quarantine.release(bus, chosen, by=actor(), why=args.why))

    return await _run(config, body)


async def cmd_delete(args: argparse.Namespace, config: Config) -> int:
    """``quarantine delete ID...``: removed unsent."""

    async def body(bus: Bus, entries: list[QuarantineEntry]) -> int:
        chosen = quarantine.resolve(entries, args.ids)
        return _report("deleted", await quarantine.delete(bus, chosen, by=actor(), why=args.why))

    return await _run(config, body)


def _report(verb: str, results: list[Result]) -> int:
    for result in results:
        print(f"{result.id}  {'ok' if result.done else 'kept'}  {result.why}")
    done = sum(result.done for result in results)
    print(f"{done} {verb}, {len(results) - done} left as they were")
    return 0 if done == len(results) else EXIT_PARTLY
