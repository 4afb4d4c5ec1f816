"""The bouncer's spec for the CLI and the runtime: ``STAGE``, found through the entry point.

Every ``postline`` command imports this module to build its parser, so it stays light: what
runs (``stage.py``, with aiosmtpd, aiohttp and prometheus_client) is imported only when the
stage is created or its config checked, so ``postline bounce classify`` starts without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.bouncer.cli import add_commands
from services.bouncer.config import BouncerConfig
from services.bouncer.prepare import prepare
from shared.config import Config
from shared.runtime.spec import StageSpec

if TYPE_CHECKING:
    from services.bouncer.stage import BouncerStage
    from shared.runtime.stage import StageContext


async def create(ctx: StageContext) -> BouncerStage:
    """Build the bouncer from ``ctx.config`` and bind its SMTP listener (``stage.create``)."""
    from services.bouncer import stage  # noqa: PLC0415

    return await stage.create(ctx)


def check_config(config: Config) -> BouncerConfig:
    """``postline config check``: the section and the rule table it names."""
    from services.bouncer import stage  # noqa: PLC0415

    return stage.check_config(config)


STAGE = StageSpec(
    name="bouncer",
    help="recipient feedback: bounces, complaints, unsubscribes, opens, clicks; suppressions, DSNs",
    create=create,
    order=40,
    add_commands=add_commands,
    check_config=check_config,
    prepare=prepare,
    config_type=BouncerConfig,
)
