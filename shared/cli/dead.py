"""``postline dead list|show|redrive|purge``: the dead letters on ``postline.dead``.

Owns argument definitions and printing; what is listed and what an action does is
``shared.deadletters``'s, so the CLI and the admin HTTP API (the bouncer's ``/admin/dead``)
behave alike. The bus is opened as a client (``shared.cli.tenant.client_bus``): the commands
work beside a running ``postline run`` and against Kafka. Offsets are those of
``postline.dead`` (the first column of ``list``). A bad offset, time or selection is one line
on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from shared import deadletters
from shared.bus.base import Bus
from shared.cli.tenant import actor, client_bus
from shared.config import Config
from shared.deadletters import DeadEntry, Result, Selection
from shared.errors import DeadLetterError
from shared.eventlog import format_time

#: Exit code when an action left some selected dead letter as it was (refused, already done).
EXIT_PARTLY = 3


def add_dead_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``dead ...``; handlers take ``(args, config)``."""
    dead = commands.add_parser("dead", help="dead letters: list, show, redrive, purge")
    sub = dead.add_subparsers(dest="dead_command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", help="dead letters still dead (--all: every one kept)")
    _filters(listing)
    listing.add_argument("--all", action="store_true", help="also redriven and purged ones")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=cmd_list)
    show = sub.add_parser("show", help="one dead letter: the reason and the decoded record")
    show.add_argument("offset", type=_offset, help="its offset on postline.dead")
    show.add_argument("--json", action="store_true", help="as one JSON object")
    show.add_argument("--full", action="store_true", help="the whole hex dump, not 4 KiB")
    show.set_defaults(handler=cmd_show)
    redrive = sub.add_parser(
        "redrive", help="put records back on their topic (after a fix); undecodable stay"
    )
    redrive.add_argument("offsets", nargs="*", type=_offset, metavar="OFFSET")
    _filters(redrive)
    redrive.add_argument("--all", action="store_true", help="every dead letter still dead")
    redrive.set_defaults(handler=cmd_redrive)
    purge = sub.add_parser("purge", help="mark dead letters handled (listings leave them out)")
    purge.add_argument("offsets", nargs="*", type=_offset, metavar="OFFSET")
    purge.add_argument("--topic", default="", help="only those from this topic")
    purge.add_argument(
        "--older-than", default="", metavar="AGE", help="only those dead-lettered AGE ago or more"
    )
    purge.add_argument("--all", action="store_true", help="every dead letter still dead")
    purge.add_argument("--why", default="", help="the reason, kept with the mark")
    purge.set_defaults(handler=cmd_purge)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", default="", help="only those from this topic")
    parser.add_argument(
        "--since", default="", metavar="WHEN", help="dead-lettered since: '2h' ago or an ISO time"
    )


def _offset(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an offset: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"not an offset: {text!r}")
    return value


async def _run(
    args: argparse.Namespace,
    config: Config,
    body: Callable[[Bus, Selection], Awaitable[int]],
    *,
    action: str = "",
) -> int:
    """``body`` with the selection and a started client bus; a ``DeadLetterError`` (bad
    input, an unknown offset) is one line on stderr and exit 1."""
    try:
        selection = _selection(args, action=action)
        bus = client_bus(config)
        await bus.start()
        try:
            return await body(bus, selection)
        finally:
            await bus.close()
    except DeadLetterError as exc:
        print(f"postline dead: {exc}", file=sys.stderr)
        return 1


def _selection(args: argparse.Namespace, *, action: str) -> Selection:
    """What an action or listing is about (``shared.deadletters.selection``)."""
    return deadletters.selection(
        at=time.time(),
        action=action,
        offsets=getattr(args, "offsets", ()) or (),
        topic=getattr(args, "topic", ""),
        since=getattr(args, "since", ""),
        older_than=getattr(args, "older_than", ""),
        every=bool(getattr(args, "all", False)),
    )


async def cmd_list(args: argparse.Namespace, config: Config) -> int:
    """``dead list``: one line per dead letter, oldest first."""

    async def body(bus: Bus, selection: Selection) -> int:
        entries = deadletters.select(await deadletters.load(bus), selection)
        for entry in entries:
            if args.json:
                print(json.dumps(deadletters.entry_dict(entry), sort_keys=True))
            else:
                print(format_entry(entry))
        if not args.json and not entries:
            print("no dead letters" + (" matching" if args.topic or args.since else ""))
        return 0

    return await _run(args, config, body)


def format_entry(entry: DeadEntry) -> str:
    """One readable line: offset, time, where from, group, key, state, reason."""
    row = deadletters.entry_dict(entry)
    origin = f"{row['topic'] or '?'}[{row['source_partition']}]@{row['source_offset']}"
    state = row["state"] + (f" by {row['state_by']}" if row["state_by"] else "")
    note = f" ({row['note']})" if row["note"] else ""
    key = row["key"] if row["key"] is not None else "-"
    return (
        f"{entry.offset:>6}  {format_time(entry.at) if entry.at else '-':24}  {origin}  "
        f"group={row['group'] or '-'}  key={key}  {state}{note}  {row['reason']}"
    )


async def cmd_show(args: argparse.Namespace, config: Config) -> int:
    """``dead show N``: the full reason, then the record decoded, or its bytes in hex."""

    async def body(bus: Bus, _selection: Selection) -> int:
        (entry,) = deadletters.select(
            await deadletters.load(bus), Selection(offsets=frozenset({args.offset}))
        )
        detail = deadletters.detail_dict(entry, full=args.full)
        if args.json:
            print(json.dumps(detail, indent=2, sort_keys=True, ensure_ascii=False))
            return 0
        print(format_entry(entry))
        print(f"reason: {detail['reason']}")
        if "value" in detail:
            print(f"value ({detail['record_type']}):")
            print(json.dumps(detail["value"], indent=2, ensure_ascii=False))
        else:
            print(f"value not decoded: {detail['decode_error']}")
            print(detail["value_hex"] or "(empty)")
        return 0

    return await _run(args, config, body)


async def cmd_redrive(args: argparse.Namespace, config: Config) -> int:
    """``dead redrive``: back on their topics; exit 3 when some stayed dead."""

    async def body(bus: Bus, selection: Selection) -> int:
        entries = deadletters.select(await deadletters.load(bus), selection)
        return _report("redriven", await deadletters.redrive(bus, entries, by=actor()))

    return await _run(args, config, body, action="redrive")


async def cmd_purge(args: argparse.Namespace, config: Config) -> int:
    """``dead purge``: marked handled; exit 3 when some were already purged."""

    async def body(bus: Bus, selection: Selection) -> int:
        entries = deadletters.select(await deadletters.load(bus), selection)
        return _report("purged", await deadletters.purge(bus, entries, by=actor(), why=args.why))

    return await _run(args, config, body, action="purge")


def _report(verb: str, results: list[Result]) -> int:
    for result in results:
        outcome = "ok" if result.done else "kept"
        print(f"{result.offset:>6}  {result.topic or '?'}  {outcome}  {result.why}")
    done = sum(result.done for result in results)
    print(f"{done} {verb}, {len(results) - done} left as they were")
    return 0 if done == len(results) else EXIT_PARTLY
