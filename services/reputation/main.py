"""The reputation stage's spec for the CLI and the runtime: ``STAGE``, found through the
entry point (run alone as ``postline reputation-stage``: ``postline reputation`` prints the
table its records make).

Every ``postline`` command imports this module to build its parser, so it stays light: what
runs (``stage.py``, with prometheus_client) is imported only when the stage is created or its
config checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.reputation.config import ReputationConfig
from shared.config import Config
from shared.runtime.spec import StageSpec

if TYPE_CHECKING:
    from services.reputation.stage import ReputationStage
    from shared.runtime.stage import StageContext


async def create(ctx: StageContext) -> ReputationStage:
    """Build the stage from ``ctx.config`` (``stage.create``)."""
    from services.reputation import stage  # noqa: PLC0415

    return await stage.create(ctx)


def check_config(config: Config) -> ReputationConfig:
    """``postline config check``: the section and the rule table it uses."""
    from services.reputation import stage  # noqa: PLC0415

    return stage.check_config(config)


STAGE = StageSpec(
    name="reputation",
    help="sender reputation: rates per tenant, domain and provider; pauses; IP warm-up",
    create=create,
    order=50,
    check_config=check_config,
    config_type=ReputationConfig,
    command="reputation-stage",
)
