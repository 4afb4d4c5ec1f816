"""A StageContext for tests that run one stage in the test process, as the runtime builds it."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry

from shared.bus.base import Bus
from shared.config import Config
from shared.runtime.stage import StageContext


def stage_context(
    name: str,
    config: Config,
    bus: Bus,
    *,
    instance: str = "test",
    registry: CollectorRegistry | None = None,
) -> StageContext:
    """A fresh context for stage ``name``: its own registry, logger and stop event."""
    return StageContext(
        name=name,
        config=config,
        bus=bus,
        registry=registry if registry is not None else CollectorRegistry(),
        log=logging.getLogger(f"postline.{name}"),
        stopping=asyncio.Event(),
        instance=instance,
    )
