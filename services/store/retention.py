"""The store stage's retention loop: every ``[store] retention_interval``, the coming days'
partitions are made and the expired days dropped (``shared.store.partitions``).

The clock is injected (``clock``); the loop only sleeps between passes. A pass that meets a
database that is down is skipped with a warning and tried at the next interval: expiry a
little late is harmless, and the writer makes a missing partition itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from services.store.metrics import StoreSensor
from shared.errors import StoreError
from shared.runtime.consume import sleep_unless
from shared.runtime.stage import StageContext
from shared.store.db import Database
from shared.store.partitions import Retention, run_retention


class RetentionLoop:
    """Runs :func:`~shared.store.partitions.run_retention` now and every ``interval``."""

    def __init__(
        self,
        ctx: StageContext,
        db: Database,
        sensor: StoreSensor,
        *,
        default_days: int,
        ahead: int,
        interval: float,
        clock: Callable[[], float],
        tenant_days: Callable[[], Mapping[str, int]],
    ) -> None:
        self.ctx = ctx
        self.db = db
        self.sensor = sensor
        self.default_days = default_days
        self.ahead = ahead
        self.interval = interval
        self.clock = clock
        self.tenant_days = tenant_days

    async def once(self) -> Retention | None:
        """One pass; ``None`` when the database failed it (logged)."""
        try:
            done = await run_retention(
                self.db,
                now=self.clock(),
                default_days=self.default_days,
                tenant_days=self.tenant_days(),
                ahead=self.ahead,
            )
        except StoreError as exc:
            self.ctx.log.warning(
                "store retention pass failed, trying at the next interval",
                extra={"stage": self.ctx.name, "error": str(exc)},
            )
            return None
        self.sensor.retention(done.partitions, len(done.dropped))
        if done.dropped or done.made:
            self.ctx.log.info(
                "store retention",
                extra={"stage": self.ctx.name, "dropped": done.dropped, "made": done.made},
            )
        return done

    async def run(self) -> None:
        """Pass after pass until the stage stops."""
        while not self.ctx.stopping.is_set():
            await self.once()
            await sleep_unless(self.ctx.stopping, self.interval)
