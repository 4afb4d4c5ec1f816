"""``postline events tail``, ``postline message show ID`` and ``postline events schema``.

The first two read ``postline.events`` through the configured bus (embedded or Kafka) as a
reader of their own: on Kafka with a unique instance id, so a CLI started inside a stage's
pod never takes over (fences) that stage's transactional producer. Lines are
``shared.eventlog``'s; ``--json`` prints the objects webhooks send
(``shared.wire.eventjson``). ``events schema`` prints the published JSON Schema of those
objects (``docs/events.schema.json``) or, with ``--markdown``, ``docs/events.md``; it reads
no config and no bus.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from shared import eventlog
from shared.bus.base import Bus
from shared.cli.store_queries import add_search_command, show_from_store
from shared.config import Config
from shared.errors import BusUnavailable
from shared.store.location import store_url
from shared.wire.records import EventKind

EXIT_NOT_FOUND = 1


def add_event_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``events tail`` and ``message show``; handlers take ``(args, config)``."""
    events = commands.add_parser("events", help="read the event log (postline.events)")
    sub = events.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    tail = sub.add_parser("tail", help="follow events as readable lines (Ctrl-C stops)")
    tail.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest kept event"
    )
    tail.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="KIND",
        help=f"only this kind (repeatable): {', '.join(k.value for k in EventKind)}",
    )
    tail.add_argument("--message", default="", metavar="ID", help="only this message's events")
    tail.add_argument(
        "--json", action="store_true", help="one JSON object per line (docs/events.md)"
    )
    tail.set_defaults(handler=cmd_tail)
    schema = sub.add_parser(
        "schema", help="print the JSON Schema of the events' JSON objects (docs/events.md)"
    )
    schema.add_argument(
        "--markdown", action="store_true", help="print docs/events.md instead of the schema"
    )
    schema.set_defaults(builtin=cmd_schema)
    message = commands.add_parser(
        "message", help="look up messages in the store (or else the event log)"
    )
    msub = message.add_subparsers(dest="message_command", required=True, metavar="COMMAND")
    show = msub.add_parser("show", help="every event of one message, in order")
    show.add_argument(
        "id", help="the message id (ingest's 'queued as' id; with a store, 8+ hex digits of it)"
    )
    show.add_argument(
        "--json", action="store_true", help="one JSON object per event (docs/events.md)"
    )
    show.add_argument(
        "--quiet",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="without a store: stop reading after this long without a new record (default 2)",
    )
    show.set_defaults(handler=cmd_show)
    add_search_command(msub)


def reader_bus(config: Config) -> Bus:
    """A bus to read events with; ``BusUnavailable`` when the embedded file is missing."""
    core = config.core
    if core.bus.kind == "embedded":
        if not core.embedded.path.exists():
            raise BusUnavailable(
                f"no embedded bus at {core.embedded.path} (start postline run with this config)"
            )
    else:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the mapped error says it
    instance = f"cli-{os.getpid()}-{secrets.token_hex(4)}"
    runtime = msgspec.structs.replace(core.runtime, instance=instance)
    from shared.bus.factory import open_bus  # noqa: PLC0415  (imports an adapter's library)

    config = Config(msgspec.structs.replace(core, runtime=runtime), config.source, {})
    return open_bus(config, owner=False)  # beside a running `postline run`


async def _with_bus(config: Config, body: Callable[[Bus], Awaitable[int]]) -> int:
    bus = reader_bus(config)
    await bus.start()
    try:
        return await body(bus)
    finally:
        await bus.close()


def _bad(item: eventlog.Undecodable) -> None:
    print(
        f"(partition {item.partition} offset {item.offset}: not an event: {item.reason})",
        file=sys.stderr,
    )


async def cmd_tail(args: argparse.Namespace, config: Config) -> int:
    """Follow the events topic until interrupted."""
    try:
        kinds = eventlog.parse_kinds(args.kind)
    except ValueError as exc:
        print(f"postline events tail: {exc}", file=sys.stderr)
        return 1
    selection = eventlog.EventFilter(kinds=kinds, message_id=args.message)

    async def body(bus: Bus) -> int:
        async for item in eventlog.tail(bus, selection, from_beginning=args.from_beginning):
            if isinstance(item, eventlog.Undecodable):
                _bad(item)
            elif args.json:
                print(json.dumps(eventlog.event_json(item)), flush=True)
            else:
                print(eventlog.format_line(item.event), flush=True)
        return 0

    return await _with_bus(config, body)  # Ctrl-C ends it: exit code 130


async def cmd_show(args: argparse.Namespace, config: Config) -> int:
    """Print one message's events (from the store when there is one); exit 1 when the log
    has none."""
    if store_url(config, existing_only=True) is not None:
        return await show_from_store(args, config)

    async def body(bus: Bus) -> int:
        events = await eventlog.history(bus, args.id, quiet=args.quiet, on_bad=_bad)
        if not events:
            print(f"no events for message {args.id} in postline.events", file=sys.stderr)
            return EXIT_NOT_FOUND
        if args.json:
            for event in events:
                print(json.dumps(eventlog.event_json(event)))
        else:
            for line in eventlog.format_history(args.id, [item.event for item in events]):
                print(line)
        return 0

    return await _with_bus(config, body)


def cmd_schema(args: argparse.Namespace) -> int:
    """``postline events schema [--markdown]``: the published schema, or its Markdown page."""
    # Loaded here, not with the parser: the schema is built from every record's types.
    if args.markdown:
        from shared.cli import eventdocs  # noqa: PLC0415

        sys.stdout.write(eventdocs.render())
    else:
        from shared.wire import eventschema  # noqa: PLC0415

        sys.stdout.write(eventschema.render())
    return 0
