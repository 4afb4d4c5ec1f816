"""The signer's spec for the CLI and the runtime: ``STAGE``, found through the entry point.

Every ``postline`` command imports this module to build its parser, so it stays light: what
runs (``stage.py``, with dkimpy, cryptography and prometheus_client) and the development key
maker (``prepare.py``) are imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.signer.commands import add_commands
from services.signer.config import SignerConfig
from shared.config import Config
from shared.runtime.spec import StageSpec

if TYPE_CHECKING:
    from services.signer.stage import SignerStage
    from shared.runtime.stage import StageContext


async def create(ctx: StageContext) -> SignerStage:
    """Build the stage from ``[signer]`` (``stage.create``)."""
    from services.signer import stage  # noqa: PLC0415

    return await stage.create(ctx)


def check_config(config: Config) -> SignerConfig:
    """``postline config check``: the section and every key file in ``keys_dir``."""
    from services.signer import stage  # noqa: PLC0415

    return stage.check_config(config)


def prepare(config: Config) -> list[str]:
    """``postline run``: create a missing development key, KEK and secret file."""
    from services.signer import prepare as dev_files  # noqa: PLC0415

    return dev_files.prepare(config)


STAGE = StageSpec(
    name="signer",
    help="DKIM-sign accepted messages and fan them out per destination",
    create=create,
    order=20,
    add_commands=add_commands,
    check_config=check_config,
    prepare=prepare,
    config_type=SignerConfig,
)
