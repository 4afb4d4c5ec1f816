"""The store stage's spec for the CLI and the runtime: ``STAGE``, found through the entry
point (run alone as ``postline store-stage``: ``postline store`` is the store's commands).

Every ``postline`` command imports this module to build its parser, so it stays light: what
runs (``stage.py``, with the database drivers and prometheus_client) is imported only when
the stage is created or its config checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.store.cli import add_commands
from services.store.config import StoreConfig
from shared.config import Config
from shared.runtime.spec import StageSpec

if TYPE_CHECKING:
    from services.store.stage import DisabledStage, StoreStage
    from shared.runtime.stage import StageContext


async def create(ctx: StageContext) -> StoreStage | DisabledStage:
    """Build the stage from ``ctx.config`` (``stage.create``)."""
    from services.store import stage  # noqa: PLC0415

    return await stage.create(ctx)


def check_config(config: Config) -> StoreConfig:
    """``postline config check``: the ``[store]`` section and where the database is."""
    from services.store import stage  # noqa: PLC0415

    return stage.check_config(config)


def prepare(config: Config) -> list[str]:
    """``postline run``: the query API's admin token, when one is configured and missing."""
    from services.store.config import load  # noqa: PLC0415
    from shared.secretfile import ensure_secret_file  # noqa: PLC0415

    path = load(config).admin_token_file
    if path is not None and ensure_secret_file(path):
        return [f"created the store API's admin token in {path}"]
    return []


STAGE = StageSpec(
    name="store",
    help="the reporting store: every event into PostgreSQL (SQLite on one host), rollups",
    create=create,
    order=55,
    add_commands=add_commands,
    check_config=check_config,
    prepare=prepare,
    config_type=StoreConfig,
    command="store-stage",
)
