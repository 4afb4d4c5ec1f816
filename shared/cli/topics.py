"""``postline topics create|list``: the declared topics on Kafka.

Owns these two commands; the declarations are ``shared.wire.topics``'s and the admin calls
``shared.bus.kafka_admin``'s. On the embedded bus both say there is nothing to do (its
topics are created on first use). Exit codes: 0 done, 1 bad arguments, 2 Kafka unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from collections.abc import Sequence
from typing import Any

from shared.config import Config
from shared.wire.topics import all_topics


def add_topic_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``topics create`` and ``topics list``; handlers take ``(args, config)``."""
    topics = commands.add_parser("topics", help="create or list the Kafka topics")
    sub = topics.add_subparsers(dest="topics_command", required=True, metavar="COMMAND")
    create = sub.add_parser("create", help="create the topics (or bring their settings in line)")
    create.add_argument("--replication-factor", type=int, default=1, metavar="N")
    create.add_argument(
        "--partitions-override",
        action="append",
        default=[],
        metavar="TOPIC=N",
        help="partitions for one topic instead of its declared count (repeatable)",
    )
    create.set_defaults(handler=cmd_topics_create)
    sub.add_parser("list", help="list the topics on the cluster").set_defaults(
        handler=cmd_topics_list
    )


def cmd_topics_create(args: argparse.Namespace, config: Config) -> int:
    """``postline topics create``: declared topics with their settings, on Kafka."""
    if args.replication_factor < 1:
        return _usage("--replication-factor must be at least 1")
    try:
        topics = _with_overrides(args.partitions_override)
    except ValueError as exc:
        return _usage(str(exc))
    if not _on_kafka(config):
        return 0
    from shared.bus.kafka_admin import create_topics  # noqa: PLC0415  (loads aiokafka)

    result = asyncio.run(create_topics(config.core.kafka, topics, args.replication_factor))
    for name, status in result.items():
        print(f"{name}: {status}")
    return cmd_topics_list(args, config)


def cmd_topics_list(args: argparse.Namespace, config: Config) -> int:
    """``postline topics list``: the topics on the cluster under the configured prefix."""
    if not _on_kafka(config):
        return 0
    from shared.bus.kafka_admin import list_topics  # noqa: PLC0415  (loads aiokafka)

    infos = asyncio.run(list_topics(config.core.kafka))
    rows = [("NAME", "PARTITIONS", "REPLICATION", "CLEANUP", "RETENTION", "MAX BYTES")]
    for info in infos:
        rows.append(
            (
                info.name,
                str(info.partitions),
                str(info.replication_factor),
                info.config.get("cleanup.policy", "?"),
                _retention(info.config.get("retention.ms")),
                info.config.get("max.message.bytes", "?"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _on_kafka(config: Config) -> bool:
    if config.core.bus.kind == "kafka":
        # aiokafka logs each failed connection attempt; the mapped BusError is the one line.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        return True
    print("the embedded bus creates its topics implicitly; nothing to do (bus.kind = embedded)")
    return False


def _with_overrides(overrides: Sequence[str]) -> list[Any]:
    topics = {topic.name: topic for topic in all_topics()}
    for override in overrides:
        name, _, count = override.partition("=")
        if name not in topics:
            raise ValueError(f"--partitions-override {override}: unknown topic {name!r}")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--partitions-override {override}: expected TOPIC=N with N >= 1")
        topics[name] = dataclasses.replace(topics[name], partitions=int(count))
    return list(topics.values())


def _retention(value: str | None) -> str:
    if value is None:
        return "?"
    if value == "-1":
        return "forever"
    millis = int(value)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis >= size and millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"


def _usage(message: str) -> int:
    print(f"postline topics: {message}", file=sys.stderr)
    return 1
