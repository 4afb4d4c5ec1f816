"""The webhooks stage's spec for the CLI and the runtime: ``STAGE``, found through the
entry point (run alone as ``postline webhooks-stage``: ``postline webhooks`` is the
endpoints' commands).

Every ``postline`` command imports this module to build its parser, so it stays light: what
runs (``stage.py``, with aiohttp's client and prometheus_client) is imported only when the
stage is created or its config checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.webhooks.cli import add_commands
from services.webhooks.config import WebhooksConfig
from shared.config import Config
from shared.runtime.spec import StageSpec

if TYPE_CHECKING:
    from services.webhooks.stage import WebhooksStage
    from shared.runtime.stage import StageContext


async def create(ctx: StageContext) -> WebhooksStage:
    """Build the stage from ``ctx.config`` (``stage.create``)."""
    from services.webhooks import stage  # noqa: PLC0415

    return await stage.create(ctx)


def check_config(config: Config) -> WebhooksConfig:
    """``postline config check``: the ``[webhooks]`` section."""
    from services.webhooks import stage  # noqa: PLC0415

    return stage.check_config(config)


def prepare(config: Config) -> list[str]:
    """``postline run``: the KEK that seals the endpoints' secrets, when missing."""
    from shared.sealing import ensure_kek  # noqa: PLC0415

    return ensure_kek(config)


STAGE = StageSpec(
    name="webhooks",
    help="tenants' webhooks: events POSTed to their endpoints, signed, retried",
    create=create,
    order=60,
    add_commands=add_commands,
    check_config=check_config,
    prepare=prepare,
    config_type=WebhooksConfig,
    command="webhooks-stage",
)
