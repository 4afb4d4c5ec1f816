"""run_batch_loop on the real embedded bus: dead letters, isolation, atomicity, drain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from shared.bus.base import BusMessage, TopicPartition
from shared.bus.embedded import EmbeddedBus
from shared.config import Config, EmbeddedConfig, load_config
from shared.errors import PoisonRecord
from shared.runtime.batch import Item, run_batch_loop
from shared.runtime.stage import StageContext
from shared.wire.records import DeadLetter, Event, EventKind
from shared.wire.topics import DEAD, OutRecord, Topic
from testing.stage import stage_context
from testing.topics import read_all, wait_count

DEADLINE = 10.0
GROUP = "test-stage"
IN: Topic[Event] = Topic("test.in", Event, lambda e: e.domain)
OUT: Topic[Event] = Topic("test.out", Event, lambda e: e.domain)

Handle = Callable[[Sequence[Item[Event]]], Awaitable[Sequence[OutRecord]]]


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=2))
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
def config() -> Config:
    return load_config(None, environ={})


def make_ctx(config: Config, bus: EmbeddedBus) -> StageContext:
    return stage_context("tester", config, bus, instance="t1")


def event(n: int, domain: str = "a.example") -> Event:
    return Event(kind=EventKind.ACCEPTED, message_id=f"m{n}", domain=domain, at=float(n))


async def echo(items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
    return [OUT.out(item.record) for item in items]


async def run_loop(
    ctx: StageContext, handle: Handle, record_attempts: int = 3
) -> asyncio.Task[None]:
    task = asyncio.create_task(
        run_batch_loop(
            ctx,
            group=GROUP,
            topic=IN,
            handle=handle,
            metrics=ctx.metrics,
            poll_timeout=0.05,
            record_attempts=record_attempts,
        )
    )
    await asyncio.wait_for(ctx.wait_ready(), DEADLINE)
    return task


async def stop(ctx: StageContext, task: asyncio.Task[None]) -> None:
    ctx.stopping.set()
    await asyncio.wait_for(task, DEADLINE)


def dead_letters(messages: list[BusMessage]) -> list[DeadLetter]:
    return [DEAD.decode(m.value) for m in messages if m.value is not None]


def metric(ctx: StageContext, name: str, labels: dict[str, str]) -> float:
    value = ctx.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def committed(bus: EmbeddedBus, tp: TopicPartition) -> int:
    consumer = bus.consumer(GROUP, [IN.name])
    return await consumer.committed(tp)


async def test_undecodable_record_is_dead_lettered_and_partition_flows(
    bus: EmbeddedBus, config: Config
) -> None:
    await bus.publish(
        [IN.out(event(1)), OutRecord(IN.name, b"a.example", b"\xc1 not msgpack"), IN.out(event(3))]
    )
    ctx = make_ctx(config, bus)
    task = await run_loop(ctx, echo)
    outputs = await wait_count(bus, OUT.name, 2)
    await stop(ctx, task)

    assert [OUT.decode(m.value or b"").message_id for m in outputs] == ["m1", "m3"]
    (dead,) = dead_letters(await read_all(bus, DEAD.name))
    assert dead.reason.startswith("decode: test.in: cannot decode Event")
    assert (dead.topic, dead.offset, dead.group) == (IN.name, 1, GROUP)
    assert dead.value == b"\xc1 not msgpack"
    assert (
        metric(ctx, "postline_records_dead_lettered_total", {"stage": "tester", "reason": "decode"})
        == 1
    )
    assert (
        metric(ctx, "postline_records_consumed_total", {"stage": "tester", "topic": IN.name}) == 3
    )


async def test_poison_record_alone_is_dead_lettered(bus: EmbeddedBus, config: Config) -> None:
    await bus.publish([IN.out(event(n)) for n in range(5)])
    calls: list[int] = []

    async def picky(items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
        calls.append(len(items))
        if any(item.record.message_id == "m2" for item in items):
            raise PoisonRecord("m2 is unusable")
        return await echo(items)

    ctx = make_ctx(config, bus)
    task = await run_loop(ctx, picky)
    outputs = await wait_count(bus, OUT.name, 4)
    dead = dead_letters(await wait_count(bus, DEAD.name, 1))
    await stop(ctx, task)

    assert sorted(OUT.decode(m.value or b"").message_id for m in outputs) == [
        "m0",
        "m1",
        "m3",
        "m4",
    ]
    assert [d.reason for d in dead] == ["poison: m2 is unusable"]
    assert calls.count(1) >= 5  # the failing batch was retried record by record


async def test_record_failing_every_attempt_is_dead_lettered_after_retries(
    bus: EmbeddedBus, config: Config
) -> None:
    await bus.publish([IN.out(event(1)), IN.out(event(2))])
    attempts = {"m1": 0, "m2": 0}

    async def flaky(items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
        for item in items:
            attempts[item.record.message_id] += 1
        if any(item.record.message_id == "m1" for item in items):
            raise ValueError("always broken")
        return await echo(items)

    ctx = make_ctx(config, bus)
    task = await run_loop(ctx, flaky, record_attempts=3)
    dead = dead_letters(await wait_count(bus, DEAD.name, 1))
    await wait_count(bus, OUT.name, 1)
    await stop(ctx, task)

    assert dead[0].reason == "failed: ValueError: always broken"
    assert attempts["m1"] == 1 + 3  # the batch, then three tries on its own


async def test_outputs_and_offsets_commit_together_exactly_once(
    bus: EmbeddedBus, config: Config
) -> None:
    await bus.publish([IN.out(event(n, f"d{n % 3}.example")) for n in range(30)])
    failed_once = False

    async def fails_first_batch(items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
        nonlocal failed_once
        if not failed_once and len(items) > 1:
            failed_once = True  # outputs of this attempt must never become visible
            raise RuntimeError("transient")
        return await echo(items)

    ctx = make_ctx(config, bus)
    task = await run_loop(ctx, fails_first_batch)
    await wait_count(bus, OUT.name, 30)
    await stop(ctx, task)

    # A second member of the group finds nothing left: offsets moved with the outputs.
    again = make_ctx(config, bus)
    seen: list[Item[Event]] = []

    async def record(items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
        seen.extend(items)
        return []

    task = await run_loop(again, record)
    await asyncio.sleep(0)  # one scheduling round; emptiness is checked through offsets below
    await stop(again, task)
    outputs = await read_all(bus, OUT.name)
    assert sorted(OUT.decode(m.value or b"").message_id for m in outputs) == sorted(
        f"m{n}" for n in range(30)
    )
    assert seen == []
    inputs = await read_all(bus, IN.name)
    for tp in {m.tp for m in inputs}:
        last = max(m.offset for m in inputs if m.tp == tp)
        assert await committed(bus, tp) == last + 1


async def test_stop_finishes_and_commits_the_current_batch(
    bus: EmbeddedBus, config: Config
) -> None:
    await bus.publish([IN.out(event(n)) for n in range(3)])
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow(items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
        entered.set()
        await release.wait()
        return await echo(items)

    ctx = make_ctx(config, bus)
    task = await run_loop(ctx, slow)
    await asyncio.wait_for(entered.wait(), DEADLINE)
    ctx.stopping.set()
    assert ctx.active == 1 and not task.done()  # the batch is in flight and holds the drain
    release.set()
    await asyncio.wait_for(task, DEADLINE)

    # Whatever the in-flight batch handled was published and committed before the loop returned.
    outputs = await read_all(bus, OUT.name)
    handled = [OUT.decode(m.value or b"").message_id for m in outputs]
    assert handled and handled == [f"m{n}" for n in range(len(handled))]
    (tp,) = {m.tp for m in await read_all(bus, IN.name)}
    assert await committed(bus, tp) == len(handled)
    assert ctx.active == 0


class Counter:
    """A handler with state across batches: counts the records it saw (BatchState)."""

    def __init__(self) -> None:
        self.total = 0  # committed
        self.pending = 0  # changed by the last handle call
        self.assignments: list[frozenset[TopicPartition]] = []
        self.failed_once = False

    async def handle(self, items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
        self.pending += len(items)  # changed before failing, as a real handler may
        if not self.failed_once and len(items) > 1:
            self.failed_once = True
            raise RuntimeError("transient")
        if any(item.record.message_id == "m4" for item in items):
            raise PoisonRecord("m4 is unusable")
        return await echo(items)

    def committed(self) -> None:
        self.total += self.pending
        self.pending = 0

    def discarded(self) -> None:
        self.pending = 0

    async def assigned(self, partitions: frozenset[TopicPartition]) -> None:
        self.assignments.append(partitions)


async def test_state_keeps_only_what_was_committed(bus: EmbeddedBus, config: Config) -> None:
    await bus.publish([IN.out(event(n)) for n in range(10)])
    counter = Counter()
    ctx = make_ctx(config, bus)
    task = asyncio.create_task(
        run_batch_loop(
            ctx,
            group=GROUP,
            topic=IN,
            handle=counter.handle,
            metrics=ctx.metrics,
            poll_timeout=0.05,
            state=counter,
        )
    )
    await wait_count(bus, OUT.name, 9)
    await wait_count(bus, DEAD.name, 1)
    await stop(ctx, task)

    # The failed batch and the poison record's tries were forgotten: nine records, once each.
    assert counter.failed_once
    assert counter.total == 9
    assert counter.pending == 0
    assert counter.assignments == [
        frozenset({TopicPartition(IN.name, 0), TopicPartition(IN.name, 1)})
    ]


async def test_state_is_loaded_again_after_partitions_were_taken_and_given_back(
    bus: EmbeddedBus, config: Config
) -> None:
    """Another member takes partitions and leaves while the loop is busy in ``handle``: the
    loop's next fetch sees the same set it had, yet that member may have changed their
    state meanwhile, so it is loaded again (the revocation is what tells)."""
    counter = Counter()
    counter.failed_once = True  # no transient failure in this test
    busy, release = asyncio.Event(), asyncio.Event()

    async def handle(items: Sequence[Item[Event]]) -> Sequence[OutRecord]:
        busy.set()
        await release.wait()
        return await counter.handle(items)

    ctx = make_ctx(config, bus)
    task = asyncio.create_task(
        run_batch_loop(
            ctx,
            group=GROUP,
            topic=IN,
            handle=handle,
            metrics=ctx.metrics,
            poll_timeout=0.05,
            state=counter,
        )
    )
    await asyncio.wait_for(ctx.wait_ready(), DEADLINE)
    await bus.publish([IN.out(event(1))])
    await asyncio.wait_for(busy.wait(), DEADLINE)
    other = bus.consumer(GROUP, [IN.name])
    await other.start()  # takes a partition from the busy loop ...
    await other.stop()  # ... and gives it back before the loop fetches again
    release.set()
    await bus.publish([IN.out(event(2))])
    await wait_count(bus, OUT.name, 2)
    await stop(ctx, task)
    both = frozenset({TopicPartition(IN.name, 0), TopicPartition(IN.name, 1)})
    assert counter.assignments == [both, both]
