"""The store stage: what runs (its spec, ``STAGE``, is in ``main.py``), alone as ``postline
store-stage`` and in ``postline run`` after the bouncer.

Reads ``postline.events`` as group ``postline-store`` through ``shared.runtime.batch``; each
batch is written in ONE database transaction (``shared.store.writer``) and ``handle`` returns
no records, so the loop commits the batch's offsets only after the database committed. A
crash between the two replays the batch, which the writer's event ids make a no-op.

At start it connects and applies the migrations (``shared.store.migrate``): a database that
a newer Postline migrated is refused (``SchemaTooNew``: the stage does not start); a
database that is down is waited for (unready meanwhile). While running, a database that
goes away rewinds the batch and backs off (``outage.py``), never dead-lettering; an event
that does not decode, or that no row can be made of, is dead-lettered by the loop and the
rest go on. A retention loop (``retention.py``) drops expired days and makes partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence

from services.store.api import build_api
from services.store.config import StoreConfig, database_url, load
from services.store.erased import ErasedAddresses
from services.store.metrics import StoreMetrics, StoreSensor
from services.store.outage import DatabaseOutage
from services.store.retention import RetentionLoop
from shared.addresshash import load_hash_key_if_present
from shared.config import Config
from shared.errors import StoreError, StoreUnavailable
from shared.runtime.batch import Item, run_batch_loop
from shared.runtime.consume import Backoff
from shared.runtime.httpserver import HttpListener
from shared.runtime.stage import StageContext
from shared.store.db import Database, open_database, redact
from shared.store.migrate import check_schema, migrate
from shared.store.writer import write_batch
from shared.tenants import TenantTable
from shared.wire.records import Event
from shared.wire.topics import DEAD, EVENTS, TENANTS, OutRecord

GROUP = "postline-store"
#: How long the start-up schema check waits for the database before leaving it to run().
START_CHECK_TIMEOUT = 5.0


class StoreStage:
    """A running store stage (see the module docstring)."""

    def __init__(
        self,
        ctx: StageContext,
        cfg: StoreConfig,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.url = url
        self.clock = clock
        self.sensor = StoreSensor(StoreMetrics(ctx.registry))
        self.outage = DatabaseOutage(ctx, self.sensor, Backoff(0.5, float(cfg.max_backoff)))
        self.tenants = TenantTable(ctx.log)
        self.erased = ErasedAddresses(lambda: load_hash_key_if_present(ctx.config))
        #: The query API (``api.py``) when ``[store] api_port`` is set; its admin token is
        #: read here, so a missing file fails the start naming the key.
        self.api: HttpListener | None = build_api(
            cfg, ctx.config.source, lambda: self.db, self.tenants, clock=clock
        )
        self.db: Database | None = None

    async def connect(self) -> Database | None:
        """Open and migrate the database, waiting while it is down; ``None`` when stopped
        first. Raises ``SchemaTooNew`` (a newer Postline's database: refuse to run)."""
        while not self.ctx.stopping.is_set():
            try:
                db = await open_database(self.url)
            except StoreUnavailable as exc:
                await self.outage.failed(exc)
                continue
            try:
                applied = await migrate(db, now=self.clock())
            except StoreUnavailable as exc:
                await db.close()
                await self.outage.failed(exc)
                continue
            except BaseException:
                await db.close()
                raise
            self.outage.ok()
            self.ctx.log.info(
                "store database ready",
                extra={"url": redact(self.url), "migrations_applied": applied},
            )
            return db
        return None

    async def handle(self, items: Sequence[Item[Event]]) -> list[OutRecord]:
        """Write one batch to the database; nothing to publish."""
        assert self.db is not None  # run() connects before the loop starts
        batch = [(item.message.value or b"", item.record) for item in items]
        started = time.monotonic()
        try:
            await self.erased.refresh(self.db)
            kept = self.erased.keep(batch)
            if len(kept) < len(batch):
                self.sensor.skipped_erased(len(batch) - len(kept))
            result = await write_batch(self.db, kept)
        except StoreUnavailable:
            raise  # the outage counts it
        except StoreError:
            self.sensor.failed("refused")
            raise
        self.sensor.wrote(result, time.monotonic() - started)
        return []

    def tenant_days(self) -> Mapping[str, int]:
        """Each tenant's own retention in days (0: the store's default)."""
        return {t.id: t.settings.retention_days for t in self.tenants}

    async def run(self, ctx: StageContext) -> None:
        """Store events until stopping; see the module docstring."""
        await ctx.bus.ensure_topics([EVENTS.name, DEAD.name, TENANTS.name])
        await self.tenants.load(ctx.bus)
        follower = ctx.spawn(self.tenants.follow(ctx.bus, ctx.stopping, ctx.log), name="tenants")
        retention: asyncio.Task[None] | None = None
        try:
            if self.api is not None:
                # Up before the database: until it is, queries get 503 with Retry-After.
                await self.api.start()
            self.db = await self.connect()
            if self.db is None:
                return
            loop = RetentionLoop(
                ctx,
                self.db,
                self.sensor,
                default_days=self.cfg.retention_days,
                ahead=self.cfg.partitions_ahead,
                interval=float(self.cfg.retention_interval),
                clock=self.clock,
                tenant_days=self.tenant_days,
            )
            retention = ctx.spawn(loop.run(), name="retention")
            await run_batch_loop(
                ctx,
                group=GROUP,
                topic=EVENTS,
                handle=self.handle,
                max_records=self.cfg.batch,
                metrics=ctx.metrics,
                outage=self.outage,
            )
        finally:
            for task in (follower, retention):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if self.api is not None:
                await self.api.close()
            if self.db is not None:
                await self.db.close()


class DisabledStage:
    """``[store] enabled = false``: ``postline run`` keeps its place, doing nothing."""

    async def run(self, ctx: StageContext) -> None:
        """Serve nothing until stopping."""
        ctx.log.info("store disabled ([store] enabled = false)")
        ctx.set_ready()
        await ctx.stopping.wait()


async def refuse_newer_schema(url: str) -> None:
    """Raise ``SchemaTooNew`` when the database answers and a newer Postline migrated it
    (the stage must not start); a database that does not answer now is waited for later."""
    try:
        db = await open_database(url, timeout=START_CHECK_TIMEOUT)
    except StoreUnavailable:
        return
    try:
        await check_schema(db)
    except StoreUnavailable:
        return
    finally:
        await db.close()


async def create(
    ctx: StageContext, *, clock: Callable[[], float] = time.time
) -> StoreStage | DisabledStage:
    """Build the stage from ``[store]`` (a bad section, a Kafka bus without a database URL,
    or a database from a newer Postline fails the start)."""
    cfg = load(ctx.config)
    if not cfg.enabled:
        return DisabledStage()
    url = database_url(ctx.config)
    await refuse_newer_schema(url)
    return StoreStage(ctx, cfg, url, clock=clock)


def check_config(config: Config) -> StoreConfig:
    """Validate ``[store]`` for ``postline config check``."""
    cfg = load(config)
    if cfg.enabled:
        database_url(config)
    return cfg
