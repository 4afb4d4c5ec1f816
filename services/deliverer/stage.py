"""The deliverer stage: ``postline deliverer``, and its place in ``postline run`` (order 30).

Three handlers on the shared out-of-order loop (``shared.runtime.watermark_loop``), each its
own consumer group: one delivery :class:`~services.deliverer.engine.Engine` per lane
(``lanes.py``: ``postline-deliverer`` reads ``postline.outbound``, the transactional lane,
with ``max_in_flight``; ``postline-deliverer-bulk`` reads ``postline.outbound.bulk`` with
``bulk_max_in_flight``), sharing one set of shapers so the destination's limits count both
lanes and transactional work goes first (``shaping.py``); and ``postline-deliverer-retry``
reads the retry tiers and sends due records back to their lane (``retry.py``). The loop owns
fetch errors, back-off, commits, dead letters and readiness; every loop is a supervised task,
so one that dies fails readiness and stops the process. SIGTERM: transactions in flight
finish within ``runtime.drain_timeout``.

The lanes share one :class:`~services.deliverer.admission.Admission`, fed by two followed
tables: ``postline.tenants`` (paused senders' mail is held; a tenant's or sending domain's
source pool) and ``postline.reputation`` (the warm-up state of each source address); both are
read before the first Delivery is admitted, then followed by supervised tasks.

Operators' queue actions (``postline.control``, ``control.py``) are read before the first
Delivery too, then followed; the engines apply them at admission and to their windows, the
retry loop to the tiers (``operator.py``), and a new flush, bounce or delete makes the retry
loop look at its held partitions again. Each replica publishes its live queue state every
``queue_snapshot_interval`` (``snapshot.py``); the deferred queue's index is written with
the records (``report.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import Any

from services.deliverer.admission import Admission
from services.deliverer.config import DelivererConfig, load
from services.deliverer.control import Applied, QueueControl
from services.deliverer.engine import Engine
from services.deliverer.lanes import BULK, LANES, Lane
from services.deliverer.metrics import DelivererMetrics
from services.deliverer.mx import MxResolver
from services.deliverer.operator import SweepStart, TierIntercept
from services.deliverer.pool import Connector
from services.deliverer.retry import RETRY_GROUP, RetryRelease, RetrySchedule
from services.deliverer.shaping import Shapers
from services.deliverer.snapshot import Snapshots
from services.deliverer.transport.dane import DaneSource
from services.deliverer.transport.mtasts import MtaStsSource
from services.deliverer.transport.policy import PolicySource
from services.deliverer.warmup import WarmupLedger
from shared.config import Config
from shared.runtime.stage import StageContext
from shared.runtime.tenantsensor import tenant_sensor
from shared.runtime.watermark_loop import LoopSettings, WatermarkLoop
from shared.tenants import TenantTable
from shared.wire.records import ControlVerb, Delivery
from shared.wire.topics import (
    CONTROL,
    MTA_STS,
    OUTBOUND,
    QUEUE,
    QUEUE_LIVE,
    REPUTATION,
    TENANTS,
)

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
            dnssec=cfg.dane.enabled,
        )
        # MTA-STS policies (RFC 8461), cached on postline.mta-sts for every replica.
        self.mta_sts = (
            MtaStsSource.create(
                cfg, ctx.bus, lambda work, name: ctx.spawn(work, name=name, daemon=False)
            )
            if cfg.mta_sts.enabled
            else None
        )
        # DANE: the TLSA records of DNSSEC-validated MX hosts (RFC 7672).
        self.dane = DaneSource(self.resolver) if cfg.dane.enabled else None
        # Published policies in order of precedence (RFC 8461 2: DANE before MTA-STS).
        sources: list[PolicySource] = [
            source for source in (self.dane, self.mta_sts) if source is not None
        ]
        self.connector = Connector(cfg, self.resolver, self.metrics, policy_sources=sources)
        self.schedule = RetrySchedule(cfg.retry)
        # One set of shapers for both lanes: a provider counts our connections per IP,
        # whichever lane they carry (shaping.py).
        self.shapers = Shapers(cfg)
        self.lanes: dict[str, WatermarkLoop[Delivery]] = {}  # set while running (tests: pending)
        self.engines: dict[str, Engine] = {}  # the lanes' engines, set while running
        retry = cfg.retry
        self.control = QueueControl(
            max_age=float(retry.max_age),
            # A record waits in a tier at most a tier's length, the longest retry delay or a
            # throttle's back-off (report.py), whichever is longest.
            longest_wait=float(
                max(self.schedule.last_tier_seconds, retry.max_delay, cfg.throttling.max_backoff)
            ),
            clock=self._now,
        )
        self.control.listen(self._count_action)
        self.clock = time.time  # admission's and the records' clock (tests set another)
        self.tenants = TenantTable(ctx.log)
        self.ledger = WarmupLedger(ctx.config.core.pools.warmup, ctx.log)
        self.admission = Admission(
            ctx.config.core.pools,
            self.tenants,
            self.ledger,
            self.metrics,
            paused_hold=cfg.paused_hold,
            clock=self._now,
        )

    def _now(self) -> float:
        return self.clock()

    @property
    def pending(self) -> int:
        """Deliveries fetched and not yet committed, both lanes."""
        return sum(loop.pending for loop in self.lanes.values())

    def _lane(self, ctx: StageContext, lane: Lane) -> WatermarkLoop[Delivery]:
        """The delivery loop of one lane: its group, its own Engine and in-flight budget."""

        def spawn(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
            return ctx.spawn(coro, name=name, daemon=False)

        cfg = self.cfg
        engine = Engine(
            cfg,
            self.connector,
            schedule=self.schedule,
            metrics=self.metrics,
            activity=ctx.activity,
            spawn=spawn,
            lane=lane,
            shapers=self.shapers,
            admission=self.admission,
            clock=self._now,
            control=self.control,
        )
        self.engines[lane.name] = engine
        self.control.listen(engine.on_action)
        return WatermarkLoop(
            ctx,
            group=lane.group,
            topics=[lane.topic.name],
            record=lane.topic,
            handler=engine,
            settings=LoopSettings(
                max_in_flight=cfg.bulk_max_in_flight if lane is BULK else cfg.max_in_flight,
                fetch_batch=cfg.fetch_batch,
                flush_interval=cfg.flush_interval,
                max_hold=cfg.max_hold,
            ),
            metrics=ctx.metrics,
        )

    async def run(self, ctx: StageContext) -> None:
        """Deliver until ``ctx.stopping``, then drain; see the module docstring."""
        await ctx.bus.ensure_topics(
            [*(lane.topic.name for lane in LANES), *self.schedule.topics, QUEUE.name]
        )
        self.lanes = {lane.name: self._lane(ctx, lane) for lane in LANES}
        cfg = self.cfg
        retries = WatermarkLoop(
            ctx,
            group=RETRY_GROUP,
            topics=self.schedule.topics,
            record=OUTBOUND,
            handler=RetryRelease(
                self.schedule,
                self.metrics,
                mail_log=cfg.mail_log,
                intercept=TierIntercept(self.control, self.metrics, self.shapers.provider_of),
            ),
            settings=LoopSettings(
                max_in_flight=cfg.fetch_batch,
                fetch_batch=cfg.fetch_batch,
                flush_interval=RETRY_FLUSH,
            ),
            metrics=ctx.metrics,
        )
        loops = {f"outbound-{name}": loop for name, loop in self.lanes.items()}
        loops["retry"] = retries
        self.control.listen(
            SweepStart(
                self.control,
                ctx.bus,
                self.schedule.topics,
                retries.release_holds,
                lambda coro: ctx.spawn(coro, name="sweep-scope", daemon=False),
            )
        )
        # Every listener is in place: the actions read at start reach the retry loop too
        # (a sweep a restarted replica takes over).
        followers = await self._follow_tables(ctx)
        snapshots = Snapshots(
            ctx.bus,
            ctx.instance,
            cfg.queue_snapshot_interval,
            engines=lambda: list(self.engines.values()),
            pending=lambda: {name: loop.pending for name, loop in self.lanes.items()},
            metrics=self.metrics,
            clock=self._now,
            each=self._observe_control,
        )
        try:
            for loop in loops.values():
                if not await loop.start():
                    return
            ctx.set_ready()
            # Every loop is a daemon: one that ends before the stop request is a failure.
            tasks = [ctx.spawn(loop.run(), name=name) for name, loop in loops.items()]
            tasks.append(ctx.spawn(snapshots.run(ctx.stopping, ctx.log), name="queue-snapshots"))
            await asyncio.wait(tasks)
        finally:
            for loop in loops.values():
                await loop.stop()
            for task in followers:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.mta_sts is not None:
                await self.mta_sts.close()

    async def _follow_tables(self, ctx: StageContext) -> list[asyncio.Task[None]]:
        """Read the tenants, warm-up states, queue actions and MTA-STS policies, then follow
        them (see the module doc)."""
        # Created when missing (Kafka), as `postline topics create` would, rather than a
        # start that times out on a table nobody has written yet.
        await ctx.bus.ensure_topics(
            [TENANTS.name, REPUTATION.name, CONTROL.name, QUEUE_LIVE.name, MTA_STS.name]
        )
        await self.tenants.load(ctx.bus)
        await self.ledger.load(ctx.bus)
        await self.control.load(ctx.bus)
        followers = [
            ctx.spawn(self.tenants.follow(ctx.bus, ctx.stopping, ctx.log), name="tenants"),
            ctx.spawn(self.ledger.follow(ctx.bus, ctx.stopping, ctx.log), name="reputation"),
            ctx.spawn(self.control.follow(ctx.bus, ctx.stopping, ctx.log), name="control"),
        ]
        if self.mta_sts is not None:
            # Policies other replicas (or this one before a restart) fetched, then theirs as
            # they fetch them: one fetch per domain serves them all.
            await self.mta_sts.cache.load()
            followers.append(ctx.spawn(self.mta_sts.cache.follow(ctx.stopping), name="mta-sts"))
        return followers

    def _count_action(self, applied: Applied) -> None:
        self.metrics.queue_actions.labels(str(applied.action.verb)).inc()
        self._observe_control()

    def _observe_control(self) -> None:
        """Forget actions that no longer matter; the suspensions gauge."""
        self.control.prune()
        kinds = dict.fromkeys(("domain", "provider", "tenant", "source"), 0)
        for applied in self.control.in_force(ControlVerb.QUEUE_SUSPEND):
            kinds[applied.target.kind] = kinds.get(applied.target.kind, 0) + 1
        for kind, count in kinds.items():
            self.metrics.suspensions.labels(kind).set(count)


async def create(ctx: StageContext) -> DelivererStage:
    """Build the stage from ``[deliverer]`` (raises ``ConfigError`` naming the key)."""
    return DelivererStage(ctx, load(ctx.config))


def check_config(config: Config) -> DelivererConfig:
    """Validate ``[deliverer]`` for ``postline config check``."""
    return load(config)
