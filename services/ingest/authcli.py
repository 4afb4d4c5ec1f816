"""``postline auth unblock IP|USER``: lift an AUTH lock on every running ingest replica.

The locks live in each ingest process (``authlimit.py``); the command publishes an
``auth_unblock`` action on ``postline.control`` and every replica following it forgets that
address's or user name's failures (``main.py`` applies it). It works while ingest runs, on
Kafka with any number of replicas and on the embedded bus beside ``postline run``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from shared.wire.records import ControlVerb

if TYPE_CHECKING:
    from shared.config import Config


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``auth unblock`` with the ``postline`` CLI."""
    auth = subparsers.add_parser("auth", help="ingest AUTH throttling")
    actions = auth.add_subparsers(dest="auth_command", required=True)
    unblock = actions.add_parser(
        "unblock", help="forget the AUTH failures of a client address or a user name"
    )
    unblock.add_argument("target", type=_target, help="an IP address or an AUTH user name")
    unblock.set_defaults(handler=run_unblock)


def _target(text: str) -> str:
    target = text.strip()
    if not target:
        raise argparse.ArgumentTypeError("an IP address or a user name is needed")
    return target


async def run_unblock(args: argparse.Namespace, config: Config) -> int:
    """Publish the unblock; every running ingest applies it within a second or so."""
    # Every command that loads ingest's spec builds this parser: the bus and the control
    # topic (asyncio) are imported when the unblock is sent.
    from shared.bus.factory import open_bus  # noqa: PLC0415
    from shared.control import operator, publish_action  # noqa: PLC0415

    target: str = args.target
    bus = open_bus(config, owner=False)
    await bus.start()
    try:
        await publish_action(bus, ControlVerb.AUTH_UNBLOCK, target, by=operator())
    finally:
        await bus.close()
    print(f"unblock of {target} sent to every running ingest")
    return 0
