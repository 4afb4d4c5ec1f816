"""The deliverer's spec for the CLI and the runtime: ``STAGE``, found through the entry point.

Every ``postline`` command imports this module to build its parser, so it stays light: what
runs (``stage.py``, with aiosmtplib, dnspython and prometheus_client) is imported only when
the stage is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.deliverer.config import DelivererConfig, load
from services.deliverer.prepare import prepare
from shared.config import Config
from shared.runtime.spec import StageSpec

if TYPE_CHECKING:
    from services.deliverer.stage import DelivererStage
    from shared.runtime.stage import StageContext


async def create(ctx: StageContext) -> DelivererStage:
    """Build the stage from ``[deliverer]`` (``stage.create``)."""
    from services.deliverer import stage  # noqa: PLC0415

    return await stage.create(ctx)


def check_config(config: Config) -> DelivererConfig:
    """Validate ``[deliverer]`` for ``postline config check``."""
    return load(config)


STAGE = StageSpec(
    name="deliverer",
    help="deliver outbound mail to recipients' MX hosts, with shaping and retries",
    create=create,
    order=30,
    check_config=check_config,
    prepare=prepare,
    config_type=DelivererConfig,
)
