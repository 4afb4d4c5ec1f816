"""``postline queue summary|list|show``: the mail queue for people (``qshape``, ``mailq``,
``postcat``).

Each command reads the deferred queue's index (``postline.queue``) and the deliverer
replicas' live state (``postline.queue.live``) through a client bus, beside a running
``postline run`` or against Kafka (``shared.queue.view`` says what they hold); ``show
--body`` also reads the one record that holds the message. ``--json`` prints plain data.
The control commands (suspend, flush, bounce, ...) are ``shared.cli.queue_control``'s.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from shared.bus.base import Bus
from shared.cli.queue_control import add_control_commands, when
from shared.cli.tenant import with_bus
from shared.config import Config
from shared.queue import view
from shared.queue.index import DEFERRED
from shared.queue.targets import domain_name, parse_target
from shared.wire.records import QueueEntry, now

_ERROR_WIDTH = 200  # the last column: room for the cause in words


def add_queue_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``queue ...``; handlers take ``(args, config)``."""
    queue = commands.add_parser("queue", help="inspect and control the mail queue")
    sub = queue.add_subparsers(dest="queue_command", required=True, metavar="COMMAND")
    summary = sub.add_parser(
        "summary", help="queued mail per domain, provider, tenant or source (like qshape)"
    )
    summary.add_argument("--by", choices=view.BY, default="domain", help="group rows by")
    summary.add_argument("--top", type=int, default=50, metavar="N", help="rows shown (0: all)")
    summary.add_argument("--json", action="store_true", help="print the summary as JSON")
    summary.set_defaults(handler=cmd_summary)
    listing = sub.add_parser("list", help="the messages waiting in the retry tiers (like mailq)")
    listing.add_argument("--domain", default="", help="only mail to this recipient domain")
    listing.add_argument("--tenant", default="", help="only this tenant's mail")
    listing.add_argument(
        "--deferred", action="store_true", help="only mail an attempt deferred (not held)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per Delivery")
    listing.set_defaults(handler=cmd_list)
    show = sub.add_parser("show", help="one queued message: envelope, attempts, headers")
    show.add_argument("id", help="the message id (or a delivery id, or a unique prefix)")
    show.add_argument("--body", action="store_true", help="print the whole message (postcat)")
    show.add_argument("--json", action="store_true", help="print the entries as JSON")
    show.set_defaults(handler=cmd_show)
    add_control_commands(sub)


def age(at: float, current: float) -> str:
    """How long ago ``at`` was, in the largest unit that fits (``-`` for none)."""
    if at <= 0:
        return "-"
    seconds = max(0.0, current - at)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


async def cmd_summary(args: argparse.Namespace, config: Config) -> int:
    """Print the summary (exit 0, also when the queue is empty)."""

    async def body(bus: Bus) -> int:
        current = now()
        summary = view.summary(
            await view.read_entries(bus), await view.read_snapshots(bus, current), args.by
        )
        if args.json:
            print(json.dumps(summary.as_dict(), indent=2, sort_keys=True))
            return 0
        for line in summary_lines(summary, current, args.top):
            print(line)
        return 0

    return await with_bus(config, body)


def summary_lines(summary: view.Summary, current: float, top: int = 0) -> list[str]:
    """The summary as a table (``top``: most rows, 0 = all)."""
    tiers = summary.tiers
    head = [f"{summary.by.upper():<32}", f"{'TOTAL':>6}", f"{'WINDOW':>6}", f"{'ACTIVE':>6}"]
    head += [f"{t:>6}" for t in tiers] + [f"{'HELD':>6}", f"{'SCHED':>6}", f"{'OLDEST':>6}"]
    lines = [" ".join(head) + "  LAST ERROR"]
    rows = summary.rows if top <= 0 else summary.rows[:top]
    for row in rows:
        cells = [f"{row.name[:32]:<32}", f"{row.total:>6}", f"{row.window:>6}"]
        cells += [f"{row.in_flight:>6}"] + [f"{row.deferred.get(t, 0):>6}" for t in tiers]
        cells += [f"{row.held:>6}", f"{row.scheduled:>6}", f"{age(row.oldest, current):>6}"]
        error = row.last_error[:_ERROR_WIDTH]
        if row.throttled_until > current:
            error = f"[throttled until {when(row.throttled_until)}] {error}"
        lines.append(" ".join(cells) + "  " + error)
    if len(summary.rows) > len(rows):
        lines.append(f"... {len(summary.rows) - len(rows)} more (--top 0 shows all)")
    pending = ", ".join(f"{lane} {count}" for lane, count in sorted(summary.pending.items()))
    lines.append(
        f"{summary.replicas} deliverer replica(s) reporting; fetched, not yet done: "
        f"{pending or 'none'}"
    )
    return lines


async def cmd_list(args: argparse.Namespace, config: Config) -> int:
    """Print the waiting messages, mailq style (exit 0, also when none waits)."""
    domain = domain_name(args.domain) if args.domain else ""
    tenant = parse_target(f"tenant:{args.tenant}").name if args.tenant else ""

    async def body(bus: Bus) -> int:
        entries = view.select(
            await view.read_entries(bus), domain=domain, tenant=tenant, deferred=args.deferred
        )
        if args.json:
            for entry in entries:
                print(json.dumps(view.entry_dict(entry), sort_keys=True))
            return 0
        for line in list_lines(entries, now()):
            print(line)
        return 0

    return await with_bus(config, body)


def list_lines(entries: list[QueueEntry], current: float) -> list[str]:
    """``mailq``'s layout: per message its id, size, arrival and sender, then per
    Delivery why it waits and its recipients."""
    if not entries:
        return ["Mail queue is empty"]
    lines = [f"{'-Queue ID-':<34} {'--Size--':>8} {'----Arrival Time----':<20} -Sender/Recipient-"]
    by_message: dict[str, list[QueueEntry]] = {}
    for entry in entries:
        by_message.setdefault(entry.message_id, []).append(entry)
    for message_id, group in by_message.items():
        first = group[0]
        lines.append(
            f"{message_id:<34} {first.size:>8} {when(first.submitted_at):<20} "
            f"{first.sender or '<>'}"
        )
        for entry in group:
            lines.append(f"{'':<8}({why(entry, current)})")
            lines.extend(f"{'':<64}{rcpt}" for rcpt in entry.recipients)
        lines.append("")
    deliveries = len(entries)
    lines.append(f"-- {len(by_message)} message(s), {deliveries} domain copy(ies) waiting")
    return lines


def why(entry: QueueEntry, current: float) -> str:
    """Why a Delivery waits and until when, in one line."""
    if entry.reason == DEFERRED:
        text = str(entry.last_reply) if entry.last_reply is not None else "deferred"
        if entry.detail:
            text = entry.detail
    else:
        text = f"{entry.reason}: {entry.detail}" if entry.detail else entry.reason
    due = entry.next_attempt
    nxt = "due now" if due <= current else f"next attempt {when(due)}"
    return f"{text}; attempt {entry.attempt}; {nxt}; tier {view.tier_name(entry.tier)}"


async def cmd_show(args: argparse.Namespace, config: Config) -> int:
    """Print one message's queue entries (and with ``--body`` the message itself)."""

    async def body(bus: Bus) -> int:
        entries = view.resolve(await view.read_entries(bus), args.id)
        copy = None
        for entry in entries:
            copy = await view.read_copy(bus, entry)
            if copy is not None:
                break
        if args.json:
            for entry in entries:
                print(json.dumps(view.entry_dict(entry), sort_keys=True))
            return 0
        if args.body:
            if copy is None:
                print(f"the message data of {args.id} is no longer on the bus", file=sys.stderr)
                return 1
            sys.stdout.buffer.write(copy.data)
            sys.stdout.flush()
            return 0
        for line in show_lines(entries, now()):
            print(line)
        print()
        if copy is None:
            print("(headers unavailable: the record holding the message is gone)")
        else:
            print(view.header_text(copy.data))
        return 0

    return await with_bus(config, body)


def show_lines(entries: list[QueueEntry], current: float) -> list[str]:
    """The envelope and the state of each Delivery of one message."""
    first = entries[0]
    lines = [
        f"message     {first.message_id}",
        f"tenant      {first.tenant or 'default'}",
        f"sender      {first.sender or '<>'}",
        f"size        {first.size}",
        f"submitted   {when(first.submitted_at)} ({age(first.submitted_at, current)} ago)",
    ]
    for entry in entries:
        lines += [
            "",
            f"delivery    {entry.delivery_id} to {entry.domain}"
            + (f" ({entry.provider})" if entry.provider else ""),
            f"recipients  {', '.join(entry.recipients)}",
            f"state       {entry.reason} in {view.tier_name(entry.tier)}"
            + (f" ({entry.detail})" if entry.detail else ""),
            f"attempts    {entry.attempt} (first {when(entry.first_attempt_at)}, "
            f"last {when(entry.last_attempt_at)})",
            f"next        {when(entry.next_attempt)}",
            f"expires     {when(entry.expires_at)}",
            f"last reply  {entry.last_reply if entry.last_reply is not None else '-'}",
        ]
        if entry.source:
            lines.append(f"source      {entry.source}")
    return lines
