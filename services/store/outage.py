"""How the store stage lives through a database that is down, slow or full.

The batch loop (``shared.runtime.batch``) rewinds a batch whose write raised
:class:`~shared.errors.StoreUnavailable` and calls :meth:`DatabaseOutage.failed`: nothing is
dead-lettered and no offset is committed, so the events wait on ``postline.events`` and the
store catches up once the database answers. Meanwhile the stage is unready (condition
``store``) and retries with a capped exponential back-off; the rest of the pipeline never
waits for it (no other stage reads what it writes). One warning when an outage starts, one
line when it ends, however many retries in between.
"""

from __future__ import annotations

import time

from services.store.metrics import StoreSensor
from shared.errors import StoreUnavailable
from shared.runtime.consume import Backoff, sleep_unless
from shared.runtime.stage import StageContext

#: The readiness condition held while the database is down.
CONDITION = "store"


class DatabaseOutage:
    """The store's :class:`~shared.runtime.batch.Outage`: back-off, readiness, one log line."""

    errors: tuple[type[Exception], ...] = (StoreUnavailable,)

    def __init__(self, ctx: StageContext, sensor: StoreSensor, backoff: Backoff) -> None:
        self.ctx = ctx
        self.sensor = sensor
        self.backoff = backoff
        self.failures = 0
        self._since = 0.0

    async def failed(self, exc: Exception) -> None:
        """The database did not take a write (or a connection): wait before the next try."""
        self.failures += 1
        if self.failures == 1:
            self._since = time.monotonic()
            self.sensor.database(available=False)
            self.ctx.log.warning(
                "store database unavailable: events wait on the topic, retrying",
                extra={"stage": self.ctx.name, "error": str(exc)},
            )
        self.sensor.failed("unavailable")
        self.ctx.hold_unready(CONDITION, str(exc))
        await sleep_unless(self.ctx.stopping, self.backoff.delay(self.failures))

    def ok(self) -> None:
        """The database answered: end the outage."""
        if not self.failures:
            return
        self.ctx.log.info(
            "store database available again",
            extra={
                "stage": self.ctx.name,
                "retries": self.failures,
                "seconds": round(time.monotonic() - self._since, 1),
            },
        )
        self.failures = 0
        self.sensor.database(available=True)
        self.ctx.release_unready(CONDITION)
