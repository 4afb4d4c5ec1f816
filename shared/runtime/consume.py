"""What both consume skeletons share: the decoded item, back-off, dead letters, bus trouble.

Postline has two kinds of consume loop (``shared.runtime.batch`` for in-order batches,
``shared.runtime.watermark_loop`` for out-of-order work behind a watermark). Both decode records the
same way, build the same :class:`~shared.wire.records.DeadLetter`, and treat a failing bus the same
way: count it, log it, hold the stage's readiness while it lasts, back off exponentially, and
never blame a record for it. This module holds those pieces once; it runs no loop itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared.bus.base import BusMessage
from shared.errors import BusError, DecodeError, PoisonRecord, RecordTooLarge
from shared.runtime.metrics import CoreMetrics
from shared.runtime.stage import StageContext
from shared.wire.records import DeadLetter, Record
from shared.wire.topics import DEAD, OutRecord, Topic

R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Item(Generic[R]):
    """One decoded input record and the bus message it came from."""

    record: R
    message: BusMessage


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``first`` seconds, doubling, never more than ``cap``."""

    first: float = 0.2
    cap: float = 10.0

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (1-based)."""
        return float(min(self.cap, self.first * 2 ** max(0, attempt - 1)))


#: Retrying one failing record: quick at first, the record is probably at fault.
RECORD_BACKOFF = Backoff(0.1, 2.0)
#: Waiting out a failing bus: a broker restart takes seconds, a leader election less.
BUS_BACKOFF = Backoff(0.2, 10.0)


def decode(topic: Topic[R], message: BusMessage) -> R:
    """The record in ``message``; raises ``DecodeError`` for bytes that are not one."""
    if message.value is None:
        raise DecodeError(f"{topic.name}: empty value (tombstone) where a record is due")
    return topic.decode(message.value)


def dead_letter(
    message: BusMessage, exc: BaseException | str, group: str, *, keep_value: bool = True
) -> OutRecord:
    """The ``postline.dead`` record of an input record that cannot be used.

    ``keep_value=False`` drops the original bytes (when they are what made the output too
    large), keeping the reason and the position so an operator can find the record.
    """
    return DEAD.out(
        DeadLetter(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value if keep_value else None,
            reason=exc if isinstance(exc, str) else reason(exc),
            group=group,
            at=time.time(),
        )
    )


def reason(exc: BaseException) -> str:
    """The dead letter's reason for ``exc``: its class of failure and its message."""
    if isinstance(exc, PoisonRecord):
        return f"poison: {exc.reason}"
    if isinstance(exc, DecodeError):
        return f"decode: {exc}"
    if isinstance(exc, RecordTooLarge):
        return f"output too large: {exc}"
    return f"failed: {type(exc).__name__}: {exc}"


def where(message: BusMessage) -> dict[str, object]:
    """Log fields naming a message's position."""
    return {"topic": message.topic, "partition": message.partition, "offset": message.offset}


async def sleep_unless(stopping: asyncio.Event, delay: float) -> None:
    """Sleep ``delay`` seconds, or less when ``stopping`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), delay)


class BusTrouble:
    """How one consumer lives through a failing bus.

    Each failure is counted (``postline_bus_errors_total``), logged, and holds the stage's
    readiness (condition ``bus:<group>``) until the next success, so ``/readyz`` tells the
    orchestrator and the operator that this stage is not doing its work; the caller then
    backs off exponentially. Nothing is dead-lettered for a bus failure.
    """

    def __init__(
        self, ctx: StageContext, group: str, metrics: CoreMetrics, backoff: Backoff
    ) -> None:
        self.ctx = ctx
        self.group = group
        self.metrics = metrics
        self.backoff = backoff
        self.failures = 0

    @property
    def condition(self) -> str:
        """The readiness condition this consumer holds while the bus fails."""
        return f"bus:{self.group}"

    async def failed(self, exc: BusError) -> None:
        """Count, log, hold readiness and wait out the back-off (less when stopping)."""
        self.failures += 1
        self.metrics.bus_errors.labels(self.ctx.name).inc()
        delay = self.backoff.delay(self.failures)
        self.ctx.hold_unready(self.condition, str(exc))
        self.ctx.log.warning(
            "bus failed, backing off",
            extra={
                "stage": self.ctx.name,
                "group": self.group,
                "error": str(exc),
                "retry_in": delay,
            },
        )
        await sleep_unless(self.ctx.stopping, delay)

    def ok(self) -> None:
        """The bus answered: end the back-off and the readiness hold."""
        if self.failures:
            self.failures = 0
            self.ctx.release_unready(self.condition)
