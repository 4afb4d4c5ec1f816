"""The deliverer stage: ``postline deliverer``, and its place in ``postline run`` (order 30).

Two handlers on the shared out-of-order loop (``shared.runtime.watermark_loop``), each its own
consumer group: ``postline-deliverer`` reads ``postline.outbound`` and delivers
(``engine.py``), ``postline-deliverer-retry`` reads the retry tiers and sends due records back
(``retry.py``). The loop owns fetch errors, back-off, commits, dead letters and readiness;
both loops are supervised tasks, so one that dies fails readiness and stops the process.
SIGTERM: transactions in flight finish within ``runtime.drain_timeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from services.deliverer.config import DelivererConfig, load
from services.deliverer.engine import GROUP, Engine
from services.deliverer.metrics import DelivererMetrics
from services.deliverer.mx import MxResolver
from services.deliverer.pool import Connector
from services.deliverer.prepare import prepare
from services.deliverer.retry import RETRY_GROUP, RetryRelease, RetrySchedule
from shared.config import Config
from shared.runtime.stage import StageContext, StageSpec
from shared.runtime.tenantsensor import tenant_sensor
from shared.runtime.watermark_loop import LoopSettings, WatermarkLoop
from shared.wire.records import Delivery
from shared.wire.topics import OUTBOUND

#: How often the retry loop commits; tier delays are seconds to hours, so this is plenty.
RETRY_FLUSH = 0.5


class DelivererStage:
    """A running deliverer: resolver, connector, the delivery engine and the retry loop."""

    def __init__(self, ctx: StageContext, cfg: DelivererConfig) -> None:
        self.cfg = cfg
        self.metrics = DelivererMetrics(ctx.registry, tenant_sensor(ctx))
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
        self.loop: WatermarkLoop[Delivery] | None = None  # set while running (tests: pending)

    async def run(self, ctx: StageContext) -> None:
        """Deliver until ``ctx.stopping``, then drain; see the module docstring."""
        await ctx.bus.ensure_topics([OUTBOUND.name, *self.schedule.topics])

        def spawn(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
            return ctx.spawn(coro, name=name, daemon=False)

        engine = Engine(
            self.cfg,
            self.connector,
            schedule=self.schedule,
            metrics=self.metrics,
            activity=ctx.activity,
            spawn=spawn,
        )
        cfg = self.cfg
        outbound = self.loop = WatermarkLoop(
            ctx,
            group=GROUP,
            topics=[OUTBOUND.name],
            record=OUTBOUND,
            handler=engine,
            settings=LoopSettings(
                max_in_flight=cfg.max_in_flight,
                fetch_batch=cfg.fetch_batch,
                flush_interval=cfg.flush_interval,
                max_hold=cfg.max_hold,
            ),
            metrics=ctx.metrics,
        )
        retries = WatermarkLoop(
            ctx,
            group=RETRY_GROUP,
            topics=self.schedule.topics,
            record=OUTBOUND,
            handler=RetryRelease(self.schedule, self.metrics),
            settings=LoopSettings(
                max_in_flight=cfg.fetch_batch,
                fetch_batch=cfg.fetch_batch,
                flush_interval=RETRY_FLUSH,
            ),
            metrics=ctx.metrics,
        )
        try:
            if not (await outbound.start() and await retries.start()):
                return
            ctx.set_ready()
            # Both loops are daemons: one that ends before the stop request is a failure.
            tasks = [
                ctx.spawn(outbound.run(), name="outbound"),
                ctx.spawn(retries.run(), name="retry"),
            ]
            await asyncio.wait(tasks)
        finally:
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
