"""The deliverer stage: ``postline deliverer``, and its place in ``postline run`` (order 30).

Two consumers on the bus, used directly (deliveries finish out of order, so the shared batch
loop does not fit): group ``postline-deliverer`` reads ``postline.outbound`` (``engine.py``),
group ``postline-deliverer-retry`` reads the retry tiers and sends due records back
(``retry.py``). SIGTERM: transactions in flight finish within ``runtime.drain_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib

from services.deliverer.config import DelivererConfig, load
from services.deliverer.engine import GROUP, Engine
from services.deliverer.metrics import DelivererMetrics
from services.deliverer.mx import MxResolver
from services.deliverer.pool import Connector
from services.deliverer.prepare import prepare
from services.deliverer.retry import RETRY_GROUP, RetryLoop, RetrySchedule
from shared.config import Config
from shared.stage import StageContext, StageSpec
from shared.topics import OUTBOUND


class DelivererStage:
    """A running deliverer: resolver, connector, the delivery engine and the retry loop."""

    def __init__(self, ctx: StageContext, cfg: DelivererConfig) -> None:
        self.cfg = cfg
        self.metrics = DelivererMetrics(ctx.registry)
        timeouts = cfg.timeouts
        self.resolver = MxResolver(
            cfg.nameservers,
            timeout=timeouts.dns,
            negative_ttl=cfg.negative_ttl,
            cache_size=cfg.mx_cache_size,
            metrics=self.metrics,
        )
        self.connector = Connector(cfg, self.resolver, self.metrics)
        self.schedule = RetrySchedule(cfg.retry)
        self.engine: Engine | None = None  # set while running (tests read ``pending``)

    async def run(self, ctx: StageContext) -> None:
        """Deliver until ``ctx.stopping``, then drain; see the module docstring."""
        outbound = ctx.bus.consumer(GROUP, [OUTBOUND.name])
        retries = ctx.bus.consumer(RETRY_GROUP, self.schedule.topics)
        await ctx.bus.ensure_topics([OUTBOUND.name, *self.schedule.topics])
        await outbound.start()
        await retries.start()
        engine = self.engine = Engine(
            self.cfg,
            outbound,
            self.connector,
            schedule=self.schedule,
            metrics=self.metrics,
            activity=ctx.activity,
        )
        retry_loop = RetryLoop(retries, self.schedule, self.metrics)
        retry_task = asyncio.create_task(retry_loop.run(ctx.stopping), name="deliverer:retry")
        ctx.set_ready()
        try:
            await engine.run(ctx.stopping, ctx.config.core.runtime.drain_timeout)
            with contextlib.suppress(asyncio.CancelledError):
                await retry_task
        finally:
            retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retry_task
            await outbound.stop()
            await retries.stop()


async def create(ctx: StageContext) -> DelivererStage:
    """Build the stage from ``[deliverer]`` (raises ``ConfigError`` naming the key)."""
    return DelivererStage(ctx, load(ctx.config))


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
