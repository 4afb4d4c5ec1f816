"""The out-of-order loop on the real embedded bus: failed work, lost work, holds, dead letters.

Each test drives a small handler whose work ends out of order (or not at all), and checks
what a stage relies on: every record ends in an output or a dead letter, and the committed
offset moves past it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path

import msgspec
import pytest

from shared.bus.base import TopicPartition
from shared.bus.embedded import EmbeddedBus
from shared.config import Config, EmbeddedConfig, load_config
from shared.runtime.consume import Item
from shared.runtime.stage import StageContext
from shared.runtime.watermark_loop import LoopSettings, Ticket, WatermarkLoop
from shared.wire.records import Event, EventKind
from shared.wire.topics import DEAD, OutRecord, Topic
from testing.stage import stage_context
from testing.topics import read_all, wait_count

GROUP = "test-unordered"
IN: Topic[Event] = Topic("test.in", Event, lambda e: e.domain)
OUT: Topic[Event] = Topic("test.out", Event, lambda e: e.domain)
TP0 = TopicPartition(IN.name, 0)


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=1))
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
def ctx(bus: EmbeddedBus) -> StageContext:
    config: Config = load_config(None, environ={})
    return stage_context("tester", config, bus)


def event(n: int, detail: str = "") -> Event:
    return Event(
        kind=EventKind.ACCEPTED, message_id=f"m{n}", domain="d.example", detail=detail, at=float(n)
    )


class Worker:
    """Work per record, as the record's ``detail`` says: "" finishes after a short delay (in
    reverse order of arrival), "raise" raises in the work, "admit" raises while admitting,
    "lost" never ends, "hold" waits ``hold`` seconds on the bus first."""

    def __init__(self, *, failed_raises: bool = False, hold: float = 0.3) -> None:
        self.failed_raises = failed_raises
        self.hold = hold
        self.failures: list[tuple[str, str]] = []
        self.held: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    def admit(self, ticket: Ticket[Event]) -> None:
        record = ticket.item.record
        if record.detail == "admit":
            raise RuntimeError("bug while admitting")
        if record.detail == "hold" and record.message_id not in self.held:
            self.held.add(record.message_id)
            ticket.hold_until(time.time() + self.hold)
            return
        if record.detail == "lost":
            return
        task = asyncio.create_task(self._work(ticket))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _work(self, ticket: Ticket[Event]) -> None:
        record = ticket.item.record
        await asyncio.sleep(0.05 * (10 - ticket.offset % 10) / 10)
        try:
            if record.detail == "raise":
                raise ValueError("bad recipient")
            ticket.finish([OUT.out(record)])
        except ValueError as exc:
            ticket.fail(exc)

    def failed(self, item: Item[Event], exc: Exception) -> Sequence[OutRecord]:
        self.failures.append((item.record.message_id, type(exc).__name__))
        if self.failed_raises:
            raise RuntimeError("cannot build the failure outcome either")
        return [OUT.out(msgspec.structs.replace(item.record, kind=EventKind.DEFERRED))]

    def revoked(self, partitions: Collection[TopicPartition]) -> None:
        pass

    async def drain(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=timeout)

    def flushed(self) -> None:
        pass


async def running(ctx: StageContext, worker: Worker, **settings: float) -> asyncio.Task[None]:
    loop = WatermarkLoop(
        ctx,
        group=GROUP,
        topics=[IN.name],
        record=IN,
        handler=worker,
        settings=LoopSettings(flush_interval=0.05, **settings),  # type: ignore[arg-type]
        metrics=ctx.metrics,
    )
    assert await loop.start()

    async def run() -> None:
        try:
            await loop.run()
        finally:
            await loop.stop()

    return asyncio.create_task(run())


async def committed(bus: EmbeddedBus) -> int:
    return await bus.consumer(GROUP, [IN.name]).committed(TP0)


async def wait_committed(bus: EmbeddedBus, offset: int) -> None:
    deadline = time.monotonic() + 10
    while await committed(bus) < offset:
        assert time.monotonic() < deadline, f"committed {await committed(bus)}, not {offset}"
        await asyncio.sleep(0.02)


def outputs(messages: list[object]) -> list[tuple[str, str]]:
    return [(e.message_id, e.kind.value) for e in (OUT.decode(m.value) for m in messages)]  # type: ignore[attr-defined]


async def test_out_of_order_work_commits_in_order_and_failed_work_gets_its_outcome(
    bus: EmbeddedBus, ctx: StageContext
) -> None:
    worker = Worker()
    task = await running(ctx, worker)
    await bus.publish([IN.out(event(n, "raise" if n in (2, 5) else "")) for n in range(8)])
    await wait_committed(bus, 8)
    got = outputs(await wait_count(bus, OUT.name, 8))
    assert sorted(got) == sorted(
        [(f"m{n}", "deferred" if n in (2, 5) else "accepted") for n in range(8)]
    )
    assert sorted(worker.failures) == [("m2", "ValueError"), ("m5", "ValueError")]
    assert (
        ctx.registry.get_sample_value(
            "postline_work_failures_total", {"stage": "tester", "reason": "error"}
        )
        == 2
    )
    ctx.stopping.set()
    await asyncio.wait_for(task, 10)


async def test_handler_raising_at_admission_does_not_pin_the_partition(
    bus: EmbeddedBus, ctx: StageContext
) -> None:
    task = await running(ctx, Worker())
    await bus.publish([IN.out(event(0, "admit")), IN.out(event(1))])
    await wait_committed(bus, 2)
    assert sorted(outputs(await read_all(bus, OUT.name))) == [
        ("m0", "deferred"),
        ("m1", "accepted"),
    ]
    ctx.stopping.set()
    await asyncio.wait_for(task, 10)


async def test_lost_work_is_failed_after_max_hold(bus: EmbeddedBus, ctx: StageContext) -> None:
    worker = Worker()
    task = await running(ctx, worker, max_hold=0.3)
    await bus.publish([IN.out(event(0, "lost")), IN.out(event(1))])
    await wait_committed(bus, 2)
    assert worker.failures == [("m0", "WorkTimedOut")]
    assert (
        ctx.registry.get_sample_value(
            "postline_work_failures_total", {"stage": "tester", "reason": "timeout"}
        )
        == 1
    )
    ctx.stopping.set()
    await asyncio.wait_for(task, 10)


async def test_no_failure_outcome_means_a_dead_letter(bus: EmbeddedBus, ctx: StageContext) -> None:
    task = await running(ctx, Worker(failed_raises=True))
    await bus.publish([IN.out(event(0, "raise")), IN.out(event(1))])
    await wait_committed(bus, 2)
    (dead,) = [DEAD.decode(m.value) for m in await read_all(bus, DEAD.name) if m.value]
    assert (dead.offset, dead.group) == (0, GROUP)
    assert "cannot build the failure outcome" in dead.reason
    assert outputs(await read_all(bus, OUT.name)) == [("m1", "accepted")]
    ctx.stopping.set()
    await asyncio.wait_for(task, 10)


async def test_undecodable_record_is_dead_lettered(bus: EmbeddedBus, ctx: StageContext) -> None:
    task = await running(ctx, Worker())
    await bus.publish([OutRecord(IN.name, b"d.example", b"\xc1 not msgpack"), IN.out(event(1))])
    await wait_committed(bus, 2)
    (dead,) = [DEAD.decode(m.value) for m in await read_all(bus, DEAD.name) if m.value]
    assert dead.reason.startswith("decode:")
    ctx.stopping.set()
    await asyncio.wait_for(task, 10)


async def test_held_record_waits_and_keeps_order_behind_it(
    bus: EmbeddedBus, ctx: StageContext
) -> None:
    worker = Worker(hold=0.5)
    task = await running(ctx, worker)
    started = time.monotonic()
    await bus.publish([IN.out(event(0, "hold")), IN.out(event(1)), IN.out(event(2))])
    await asyncio.sleep(0.2)
    assert await committed(bus) == 0  # nothing passes the held record
    assert await read_all(bus, OUT.name) == []
    await wait_committed(bus, 3)
    assert time.monotonic() - started >= 0.5
    assert sorted(outputs(await read_all(bus, OUT.name))) == [
        ("m0", "accepted"),
        ("m1", "accepted"),
        ("m2", "accepted"),
    ]
    ctx.stopping.set()
    await asyncio.wait_for(task, 10)
