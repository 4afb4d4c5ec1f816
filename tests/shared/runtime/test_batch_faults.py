"""run_batch_loop's recovery paths, with faults injected into a real embedded bus.

Each test breaks one thing (a fetch, a commit, a seek, the group join, the handler's own bus
call, an output's size) and reads what the loop left on the topics: every input handled
exactly once, outputs never duplicated, nothing dead-lettered for a bus failure, and the
stage's readiness held while the bus fails and released after.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import msgspec
import pytest

from shared.bus import base as bus_base
from shared.bus.base import BusMessage, TopicPartition
from shared.bus.embedded import EmbeddedBus
from shared.config import Config, EmbeddedConfig, load_config
from shared.errors import BusUnavailable
from shared.runtime.batch import Backoff, Item, run_batch_loop
from shared.runtime.stage import StageContext
from shared.wire.records import DeadLetter, Event, EventKind
from shared.wire.topics import DEAD, OutRecord, Topic
from testing.faultybus import FaultyBus
from testing.stage import stage_context
from testing.topics import read_all, wait_count

DEADLINE = 10.0
GROUP = "fault-stage"
IN: Topic[Event] = Topic("fault.in", Event, lambda e: e.domain)
OUT: Topic[Event] = Topic("fault.out", Event, lambda e: e.domain)
#: Short back-offs: the tests wait for states, never for durations.
FAST = Backoff(0.01, 0.05)

Handle = Callable[[Sequence[Item[Event]]], Awaitable[Sequence[OutRecord]]]


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[FaultyBus]:
    inner = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=2))
    await inner.start()
    faulty = FaultyBus(inner)
    yield faulty
    faulty.switch.failing = False
    await faulty.close()


@pytest.fixture
def config() -> Config:
    return load_config(None, environ={})


def event(n: int, domain: str = "a.example", detail: str = "") -> Event:
    return Event(
        kind=EventKind.ACCEPTED, message_id=f"m{n}", domain=domain, at=float(n), detail=detail
    )


async def echo(items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
    return [OUT.out(item.record) for item in items]


def start(ctx: StageContext, handle: Handle, **options: object) -> asyncio.Task[None]:
    return asyncio.create_task(
        run_batch_loop(
            ctx,
            group=GROUP,
            topic=IN,
            handle=handle,
            metrics=ctx.metrics,
            poll_timeout=0.05,
            record_backoff=FAST,
            bus_backoff=FAST,
            **options,  # type: ignore[arg-type]
        )
    )


async def stop(ctx: StageContext, task: asyncio.Task[None]) -> None:
    ctx.stopping.set()
    await asyncio.wait_for(task, DEADLINE)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition``; fail with ``what`` past the deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not condition():
        assert loop.time() < end, f"never happened: {what}"
        await asyncio.sleep(0.01)


def ids(messages: list[BusMessage]) -> list[str]:
    return sorted(OUT.decode(m.value or b"").message_id for m in messages)


def dead_letters(messages: list[BusMessage]) -> list[DeadLetter]:
    return [DEAD.decode(m.value) for m in messages if m.value is not None]


def bus_errors(ctx: StageContext) -> float:
    value = ctx.registry.get_sample_value("postline_bus_errors_total", {"stage": ctx.name})
    return 0.0 if value is None else value


async def all_committed(bus: FaultyBus) -> None:
    """The group's committed offsets are at the end of every input partition."""
    inputs = await read_all(bus.inner, IN.name)
    consumer = bus.inner.consumer(GROUP, [IN.name])
    for tp in {m.tp for m in inputs}:
        last = max(m.offset for m in inputs if m.tp == tp)
        assert await consumer.committed(tp) == last + 1, tp


async def test_fetch_failures_back_off_hold_readiness_and_lose_nothing(
    bus: FaultyBus, config: Config
) -> None:
    ctx = stage_context("tester", config, bus)
    task = start(ctx, echo)
    await asyncio.wait_for(ctx.wait_ready(), DEADLINE)
    await bus.inner.publish([IN.out(event(n, f"d{n % 3}.example")) for n in range(3)])
    await wait_count(bus.inner, OUT.name, 3)

    bus.switch.failing = True
    await until(lambda: bus.switch.refused >= 3, "three refused fetches")
    await until(lambda: not ctx.ready, "readiness held")
    assert ctx.unready_reasons.keys() == {f"bus:{GROUP}"}
    await bus.inner.publish([IN.out(event(n, f"d{n % 3}.example")) for n in range(3, 12)])
    assert len(await read_all(bus.inner, OUT.name)) == 3  # nothing handled while failing

    bus.switch.failing = False
    outputs = await wait_count(bus.inner, OUT.name, 12)
    await until(lambda: ctx.ready, "readiness released")
    await stop(ctx, task)

    assert ids(outputs) == sorted(f"m{n}" for n in range(12))
    assert await read_all(bus.inner, DEAD.name) == []
    assert bus_errors(ctx) >= 3
    await all_committed(bus)


async def test_group_join_is_retried_and_ready_only_once_joined(
    bus: FaultyBus, config: Config
) -> None:
    await bus.inner.publish([IN.out(event(n)) for n in range(4)])
    bus.switch.failing = True
    ctx = stage_context("tester", config, bus)
    task = start(ctx, echo)
    await until(lambda: bus.switch.refused >= 2, "two refused joins")
    assert not ctx.ready

    bus.switch.failing = False
    await asyncio.wait_for(ctx.wait_ready(), DEADLINE)
    outputs = await wait_count(bus.inner, OUT.name, 4)
    await until(lambda: ctx.ready, "readiness released")
    await stop(ctx, task)
    assert ids(outputs) == [f"m{n}" for n in range(4)]


async def test_stopping_while_the_join_fails_returns_without_ever_being_ready(
    bus: FaultyBus, config: Config
) -> None:
    await bus.inner.publish([IN.out(event(1))])
    bus.switch.failing = True
    ctx = stage_context("tester", config, bus)
    task = start(ctx, echo)
    await until(lambda: bus.switch.refused >= 2, "two refused joins")
    await stop(ctx, task)
    assert not ctx.ready
    assert await read_all(bus.inner, OUT.name) == []
    assert await bus.inner.consumer(GROUP, [IN.name]).committed(TopicPartition(IN.name, 0)) == 0


async def test_failed_commit_rewinds_and_reprocesses_exactly_once(
    bus: FaultyBus, config: Config
) -> None:
    """The transaction's outputs were published into it, then its commit failed: none of them
    may show, and the batch is handled again from the last committed offsets."""
    handled: list[str] = []

    async def counting(items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
        handled.extend(item.record.message_id for item in items)
        return await echo(items)

    ctx = stage_context("tester", config, bus)
    task = start(ctx, counting)
    await asyncio.wait_for(ctx.wait_ready(), DEADLINE)
    await bus.inner.publish([IN.out(event(n)) for n in range(2)])
    await wait_count(bus.inner, OUT.name, 2)

    bus.switch.fail_next("commit")
    await bus.inner.publish([IN.out(event(n)) for n in range(2, 8)])
    outputs = await wait_count(bus.inner, OUT.name, 8)
    await until(lambda: ctx.ready, "readiness released")
    await stop(ctx, task)

    assert ids(outputs) == sorted(f"m{n}" for n in range(8))  # each once
    assert sorted(handled) != sorted(set(handled))  # the failed batch really ran twice
    assert await read_all(bus.inner, DEAD.name) == []
    assert bus_errors(ctx) == 1
    await all_committed(bus)


async def test_outage_during_commit_rewinds_once_the_bus_is_back(
    bus: FaultyBus, config: Config
) -> None:
    """The bus goes down while a batch is being handled and stays down a while: the commit,
    the rewind's seek and the next fetches all fail. Once it is back, the batch comes again
    and nothing after it is committed past it."""
    outage_started = asyncio.Event()

    async def outage_in_first_batch(items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
        if not outage_started.is_set():
            outage_started.set()
            bus.switch.failing = True  # the broker dies while this batch is handled
        return await echo(items)

    ctx = stage_context("tester", config, bus)
    task = start(ctx, outage_in_first_batch)
    await asyncio.wait_for(ctx.wait_ready(), DEADLINE)
    await bus.inner.publish([IN.out(event(n)) for n in range(5)])
    await asyncio.wait_for(outage_started.wait(), DEADLINE)
    await until(lambda: bus.switch.refused >= 4, "commit, seek and fetches refused")
    assert not ctx.ready
    await bus.inner.publish([IN.out(event(n)) for n in range(5, 9)])

    bus.switch.failing = False
    outputs = await wait_count(bus.inner, OUT.name, 9)
    await until(lambda: ctx.ready, "readiness released")
    await stop(ctx, task)

    assert ids(outputs) == sorted(f"m{n}" for n in range(9))
    await all_committed(bus)


async def test_handler_bus_failure_rewinds_to_the_first_uncommitted_record(
    bus: FaultyBus, config: Config
) -> None:
    """A batch retried record by record commits each record on its own; when the handler then
    meets a bus failure on the third, only the records from the third on come again."""
    await bus.inner.publish([IN.out(event(n)) for n in range(5)])  # one partition, in order
    single: list[str] = []
    tripped = False

    async def handle(items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
        nonlocal tripped
        if len(items) > 1:
            raise ValueError("batch too hard")  # forces the record-by-record path
        (item,) = items
        if item.record.message_id == "m2" and not tripped:
            tripped = True
            raise BusUnavailable("lookup through the bus failed")
        single.append(item.record.message_id)
        return await echo(items)

    ctx = stage_context("tester", config, bus)
    task = start(ctx, handle)
    outputs = await wait_count(bus.inner, OUT.name, 5)
    await stop(ctx, task)

    assert tripped
    assert ids(outputs) == [f"m{n}" for n in range(5)]
    assert single == [f"m{n}" for n in range(5)]  # m0, m1 not handled again after the rewind
    assert await read_all(bus.inner, DEAD.name) == []  # a bus failure is not the record's fault
    assert bus_errors(ctx) == 1
    await all_committed(bus)


async def test_handler_bus_failure_on_the_whole_batch_retries_it(
    bus: FaultyBus, config: Config
) -> None:
    await bus.inner.publish([IN.out(event(n, f"d{n}.example")) for n in range(6)])
    calls = 0

    async def first_fails(items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise BusUnavailable("lookup through the bus failed")
        return await echo(items)

    ctx = stage_context("tester", config, bus)
    task = start(ctx, first_fails)
    outputs = await wait_count(bus.inner, OUT.name, 6)
    await stop(ctx, task)

    assert ids(outputs) == sorted(f"m{n}" for n in range(6))
    assert await read_all(bus.inner, DEAD.name) == []
    assert bus_errors(ctx) == 1


class Loaded:
    """A BatchState whose first load from the bus fails."""

    def __init__(self) -> None:
        self.loads = 0
        self.total = 0
        self.pending = 0

    async def handle(self, items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
        assert self.loads >= 2, "handled before the state was loaded"
        self.pending += len(items)
        return await echo(items)

    def committed(self) -> None:
        self.total += self.pending
        self.pending = 0

    def discarded(self) -> None:
        self.pending = 0

    async def assigned(self, partitions: frozenset[TopicPartition]) -> None:
        self.loads += 1
        if self.loads == 1:
            raise BusUnavailable("state table unreadable")


async def test_state_load_failure_rewinds_the_fetched_records(
    bus: FaultyBus, config: Config
) -> None:
    await bus.inner.publish([IN.out(event(n, f"d{n}.example")) for n in range(6)])
    state = Loaded()
    ctx = stage_context("tester", config, bus)
    task = start(ctx, state.handle, state=state)
    outputs = await wait_count(bus.inner, OUT.name, 6)
    await stop(ctx, task)

    assert ids(outputs) == sorted(f"m{n}" for n in range(6))
    assert state.total == 6  # the records fetched before the failed load came again, once
    assert bus_errors(ctx) == 1


@pytest.fixture
def small_records(monkeypatch: pytest.MonkeyPatch) -> int:
    """The bus's record size limit lowered to 4 KiB, so a test needs no 64 MiB record."""
    limit = 4096
    monkeypatch.setattr(bus_base, "MAX_RECORD_BYTES", limit)
    return limit


async def test_oversized_output_dead_letters_its_input_and_the_rest_go_on(
    bus: FaultyBus, config: Config, small_records: int
) -> None:
    await bus.inner.publish([IN.out(event(n)) for n in range(5)])

    async def blows_up_m3(items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
        return [
            OUT.out(event(3, detail="x" * small_records))
            if item.record.message_id == "m3"
            else OUT.out(item.record)
            for item in items
        ]

    ctx = stage_context("tester", config, bus)
    task = start(ctx, blows_up_m3)
    outputs = await wait_count(bus.inner, OUT.name, 4)
    (dead,) = dead_letters(await wait_count(bus.inner, DEAD.name, 1))
    await stop(ctx, task)

    assert ids(outputs) == ["m0", "m1", "m2", "m4"]
    assert (dead.topic, dead.offset, dead.group) == (IN.name, 3, GROUP)
    assert dead.reason.startswith("output too large: fault.out: record of ")
    assert dead.value is not None and IN.decode(dead.value).message_id == "m3"
    await all_committed(bus)


async def test_dead_letter_too_large_keeps_reason_and_position_without_the_bytes(
    bus: FaultyBus, config: Config, small_records: int
) -> None:
    """An input just under the limit whose output is too large: its dead letter with the
    original bytes would be too large as well, so it goes without them."""
    empty = IN.out(event(1))
    room = small_records - len(empty.key or b"") - len(empty.value or b"") - 16
    big = event(1, detail="y" * room)
    assert small_records - 32 < len(IN.out(big).value or b"") <= small_records
    await bus.inner.publish([IN.out(event(0)), IN.out(big), IN.out(event(2))])

    async def doubles(items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
        return [
            OUT.out(msgspec.structs.replace(item.record, detail=item.record.detail * 2))
            for item in items
        ]

    ctx = stage_context("tester", config, bus)
    task = start(ctx, doubles)
    outputs = await wait_count(bus.inner, OUT.name, 2)
    (dead,) = dead_letters(await wait_count(bus.inner, DEAD.name, 1))
    await stop(ctx, task)

    assert ids(outputs) == ["m0", "m2"]
    assert (dead.topic, dead.offset, dead.value) == (IN.name, 1, None)
    assert dead.reason.startswith("output too large: ")
    await all_committed(bus)
