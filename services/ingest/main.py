"""Ingest's spec for the CLI and the runtime: ``STAGE``, found through the entry point.

Every ``postline`` command imports this module to build its parser, so it stays light: what
runs (``stage.py``, with aiosmtpd, aiohttp and prometheus_client) and the development
certificate maker (``prepare.py``, with cryptography) are imported only when used.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from services.ingest import authcli, users
from services.ingest.config import IngestConfig
from shared.config import Config
from shared.runtime.spec import StageSpec

if TYPE_CHECKING:
    from services.ingest.stage import IngestStage
    from shared.runtime.stage import StageContext


async def create(ctx: StageContext) -> IngestStage:
    """Build and bind the ingest stage from ``ctx.config`` (``stage.create``)."""
    from services.ingest import stage  # noqa: PLC0415

    return await stage.create(ctx)


def check_config(config: Config) -> IngestConfig:
    """``postline config check``: the section, and that the TLS and users files load."""
    from services.ingest import stage  # noqa: PLC0415

    return stage.check_config(config)


def prepare(config: Config) -> list[str]:
    """``postline run``: create a missing development certificate and users file."""
    from services.ingest import prepare as dev_files  # noqa: PLC0415

    return dev_files.prepare(config)


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Ingest's CLI commands: ``user add`` and ``auth unblock``."""
    users.add_commands(subparsers)
    authcli.add_commands(subparsers)


STAGE = StageSpec(
    name="ingest",
    help="the SMTP front door: accept mail from apps and servers and queue it",
    create=create,
    order=10,
    add_commands=add_commands,
    check_config=check_config,
    prepare=prepare,
    config_type=IngestConfig,
)
