"""run_batch_loop with an Outage: a dependency of ``handle`` that is down rewinds the batch
(no dead letter, no offset committed) and backs off through the outage, until it answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig, load_config
from shared.runtime.batch import Item, run_batch_loop
from shared.wire.records import Event, EventKind
from shared.wire.topics import DEAD, OutRecord, Topic
from testing.stage import stage_context
from testing.topics import read_all, wait_count

DEADLINE = 10.0
IN: Topic[Event] = Topic("test.in", Event, lambda e: e.domain)
OUT: Topic[Event] = Topic("test.out", Event, lambda e: e.domain)


class DatabaseDown(Exception):
    """What the handler's dependency raises while it is away."""


class Recorder:
    """An Outage that records what the loop told it, without waiting."""

    errors: tuple[type[Exception], ...] = (DatabaseDown,)

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.oks = 0

    async def failed(self, exc: Exception) -> None:
        self.failures.append(str(exc))
        await asyncio.sleep(0.01)

    def ok(self) -> None:
        self.oks += 1


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
    opened = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=1))
    await opened.start()
    yield opened
    await opened.close()


async def test_an_outage_rewinds_and_never_dead_letters(bus: EmbeddedBus) -> None:
    await bus.publish(
        [IN.out(Event(kind=EventKind.ACCEPTED, message_id=f"m{n}", at=float(n))) for n in range(6)]
    )
    down = {"tries": 0}

    async def handle(items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
        if down["tries"] < 5:  # away for five attempts, whole batches or single records
            down["tries"] += 1
            raise DatabaseDown("connection refused")
        return [OUT.out(item.record) for item in items]

    ctx = stage_context("tester", load_config(None, environ={}), bus)
    outage = Recorder()
    task = asyncio.create_task(
        run_batch_loop(
            ctx,
            group="g",
            topic=IN,
            handle=handle,
            metrics=ctx.metrics,
            poll_timeout=0.05,
            outage=outage,
        )
    )
    outputs = await wait_count(bus, OUT.name, 6, DEADLINE)
    ctx.stopping.set()
    await asyncio.wait_for(task, DEADLINE)
    assert sorted(OUT.decode(m.value or b"").message_id for m in outputs) == [
        f"m{n}" for n in range(6)
    ]
    assert await read_all(bus, DEAD.name) == []
    assert outage.failures == ["connection refused"] * 5
    assert outage.oks >= 1
