"""The reputation stage running on a real bus (Kafka, and the embedded one): the deliverer's
events in, a tenant paused on postline.tenants with the figures, an operator's resume
recovered, and a restart that resumes from postline.reputation without counting twice."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from services.reputation.stage import GROUP, ReputationStage, create
from shared import tenant_admin
from shared.bus.base import Bus, TopicPartition
from shared.config import load_config
from shared.reputation import total
from shared.wire.records import (
    Event,
    EventKind,
    Reputation,
    SendingDomain,
    SmtpReply,
    Tenant,
    TenantState,
)
from shared.wire.topics import EVENTS, REPUTATION, TENANTS
from testing.buses import bus_of_kind
from testing.stage import stage_context
from testing.topics import read_all

DEADLINE = 60.0
NO_USER = SmtpReply(code=550, enhanced="5.1.1", text="No such user here")


@pytest.fixture(params=[pytest.param("kafka", marks=pytest.mark.kafka), "embedded"])
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    opened = bus_of_kind(request.param, request, tmp_path, "reputation", partitions=4)
    await opened.start()
    await opened.ensure_topics([EVENTS.name, TENANTS.name, REPUTATION.name])
    yield opened
    await opened.close()


@dataclass
class Running:
    """One running stage in this process."""

    stage: ReputationStage
    task: asyncio.Task[None]
    stop: Callable[[], Awaitable[None]]


async def start(bus: Bus, tmp_path: Path) -> Running:
    path = tmp_path / "postline.toml"
    path.write_text("[reputation]\nmin_messages = 20\n")
    ctx = stage_context("reputation", load_config(path, environ={}), bus)
    stage = await create(ctx)
    task = asyncio.create_task(stage.run(ctx))
    await asyncio.wait_for(ctx.wait_ready(), DEADLINE)

    async def stop() -> None:
        ctx.stopping.set()
        await asyncio.wait_for(task, DEADLINE)

    return Running(stage, task, stop)


def outcomes(tenant: str, delivered: int, bounced: int = 0, at: float = 0.0) -> list[Event]:
    """The deliverer's events for ``delivered + bounced`` messages of ``tenant``."""
    at = at or time.time()  # event times near now: the window ends at the newest one
    return [
        Event(
            kind=EventKind.BOUNCED if i < bounced else EventKind.DELIVERED,
            message_id=uuid.uuid4().hex,
            at=at + i * 0.001,
            recipient=f"r{i}@dest.test",
            domain="dest.test",
            sender=f"app@{tenant}.test",
            reply=NO_USER if i < bounced else None,
            provider="google",
            stage="deliverer",
            tenant=tenant,
        )
        for i in range(delivered + bounced)
    ]


async def add_tenant(bus: Bus, tenant: str) -> None:
    await tenant_admin.add(bus, tenant, by="test")
    domain = SendingDomain(name=f"{tenant}.test", verified=True)
    await tenant_admin.update(
        bus, tenant, lambda t: msgspec.structs.replace(t, domains=(domain,)), by="test"
    )


async def records(bus: Bus) -> dict[str, Reputation]:
    table = await bus.read_table(REPUTATION.name)
    return {key.decode(): REPUTATION.decode(value) for key, value in table.items()}


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def sent(bus: Bus, key: str) -> int:
    record = (await records(bus)).get(key)
    return total(record.buckets).sent if record is not None else 0


async def decisions(bus: Bus) -> list[Event]:
    events = [EVENTS.decode(m.value) for m in await read_all(bus, EVENTS.name) if m.value]
    return [e for e in events if e.kind is EventKind.REPUTATION]


async def all_consumed(bus: Bus) -> bool:
    """Whether the group committed every event on the topic (nothing left to count); asked
    as a member of the group, so only once the stage has left it."""
    ends: dict[TopicPartition, int] = {}
    for message in await read_all(bus, EVENTS.name):
        ends[message.tp] = max(ends.get(message.tp, 0), message.offset + 1)
    consumer = bus.consumer(GROUP, [EVENTS.name])
    await consumer.start()
    try:
        return all([await consumer.committed(tp) >= end for tp, end in ends.items()])
    finally:
        await consumer.stop()


async def test_a_bouncing_tenant_is_paused_resumed_and_a_restart_counts_once(
    bus: Bus, tmp_path: Path
) -> None:
    for tenant in ("bad", "good"):
        await add_tenant(bus, tenant)
    running = await start(bus, tmp_path)
    await bus.publish([EVENTS.out(e) for e in outcomes("good", 30) + outcomes("bad", 20, 10)])

    async def paused() -> bool:
        return (await tenant_admin.get(bus, "bad")).status.state is TenantState.PAUSED

    await until(paused, "the bouncing tenant was not paused")
    bad: Tenant = await tenant_admin.get(bus, "bad")
    assert bad.status.by == "reputation"
    assert re.fullmatch(r"hard bounce rate \d+\.\d% over 24h \(\d+ of \d+\)", bad.status.why)
    audit = [EVENTS.decode(m.value) for m in await read_all(bus, EVENTS.name) if m.value]
    assert [e.detail for e in audit if e.kind is EventKind.TENANT_CHANGED][-1] == (
        f"pause: {bad.status.why}"
    )
    [pause] = [e for e in await decisions(bus) if e.classification == "paused"]
    assert (pause.tenant, pause.scope, pause.detail) == ("bad", "tenant", bad.status.why)
    assert pause.figures["hard_bounces"] >= 3 and pause.figures["sent"] >= 20
    assert (await tenant_admin.get(bus, "good")).status.state is TenantState.ACTIVE

    # An operator resumes: the tenant's window starts afresh, it has recovered.
    await tenant_admin.set_state(bus, "bad", TenantState.ACTIVE, by="cli:ops")

    async def recovered() -> bool:
        return any(e.classification == "recovered" for e in await decisions(bus))

    await until(recovered, "no recovered decision")
    after = (await records(bus)).get("tenant|bad")  # an empty window leaves the topic
    assert after is None or (after.level == "ok" and not after.buckets)

    # A restart mid-stream: what was committed is loaded, nothing is counted twice.
    await bus.publish([EVENTS.out(e) for e in outcomes("good", 200)])

    async def some_counted() -> bool:
        return await sent(bus, "tenant|good") > 30

    await until(some_counted, "the second batch was not counted")
    await running.stop()
    await bus.publish([EVENTS.out(e) for e in outcomes("good", 170)])
    running = await start(bus, tmp_path)

    async def caught_up() -> bool:
        return await sent(bus, "tenant|good") >= 400

    await until(caught_up, "the restarted stage did not catch up")
    await running.stop()
    assert await all_consumed(bus)  # nothing left that could still be counted
    assert await sent(bus, "tenant|good") == 400
    assert await sent(bus, "domain|good|good.test") == 400
    assert (await tenant_admin.get(bus, "good")).status.state is TenantState.ACTIVE
