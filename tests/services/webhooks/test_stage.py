"""The webhooks stage on a real bus (Kafka, and the embedded one) with a real HTTPS receiver
(aiohttp, certificate from a test CA): webhooks arrive signed and verify with the
specification's algorithm; a receiver that fails then recovers gets every event; a hanging
receiver of one tenant does not delay another tenant's webhooks.

No assertion is about time: each waits (generously) for what must happen, and the hanging
test asserts causality (tenant B's webhooks all arrived while A's request still hangs).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.webhooks import admin
from services.webhooks.config import load
from services.webhooks.replay import replay
from services.webhooks.signing import verify
from services.webhooks.stage import GROUP, WebhooksStage, create, policy_of
from shared import tenant_admin
from shared.bus.base import Bus
from shared.config import Config, load_config
from shared.sealing import load_keyring
from shared.wire.eventjson import event_id
from shared.wire.records import Event, EventKind, Tenant, TenantState
from shared.wire.topics import EVENTS, TENANTS
from testing.buses import bus_of_kind
from testing.pki import Pki, make_pki
from testing.stage import stage_context
from testing.webhooks import Receiver

DEADLINE = 90.0


@pytest.fixture(params=[pytest.param("kafka", marks=pytest.mark.kafka), "embedded"])
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    opened = bus_of_kind(request.param, request, tmp_path, "webhooks", partitions=4)
    await opened.start()
    await opened.ensure_topics([EVENTS.name, TENANTS.name])
    yield opened
    await opened.close()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def write_config(tmp_path: Path, pki: Pki) -> Config:
    """Short tiers and circuit so the retries of a test come within its deadline."""
    (tmp_path / "kek.key").write_text("11" * 32)
    path = tmp_path / "postline.toml"
    path.write_text(
        f"""
[secrets]
kek_file = "{tmp_path / "kek.key"}"

[webhooks]
ca_file = "{pki.ca}"
allow_private_networks = true
tiers = ["1s", "3s"]
first_delay = "1s"
factor = 1.5
max_delay = "3s"
circuit_open = "1s"
failure_threshold = 2
request_timeout = "60s"
connect_timeout = "5s"
concurrency = 1
"""
    )
    return load_config(path, environ={})


@dataclass
class Running:
    stage: WebhooksStage
    task: asyncio.Task[None]
    stopping: asyncio.Event

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.wait_for(self.task, DEADLINE)


async def start(bus: Bus, config: Config) -> Running:
    ctx = stage_context("webhooks", config, bus)
    stage = await create(ctx)
    task = asyncio.create_task(stage.run(ctx))
    await asyncio.wait_for(ctx.wait_ready(), DEADLINE)
    return Running(stage, task, ctx.stopping)


async def endpoint(bus: Bus, config: Config, tenant: str, url: str) -> str:
    """Add ``tenant`` (when new) and an endpoint at ``url``; returns its secret."""
    await tenant_admin.add(bus, tenant, by="test")
    _, secret = await admin.add(
        bus, load_keyring(config), tenant, url, policy=policy_of(load(config)), by="test"
    )
    return secret


async def publish(bus: Bus, tenant: str, count: int) -> list[str]:
    """``count`` delivered events of ``tenant``; returns their event ids."""
    records = [
        EVENTS.out(
            Event(
                kind=EventKind.DELIVERED,
                message_id=uuid.uuid4().hex,
                recipient=f"r{n}@example.com",
                tenant=tenant,
                at=time.time(),
            )
        )
        for n in range(count)
    ]
    await bus.publish(records)
    return [event_id(r.value or b"") for r in records]


async def test_webhooks_arrive_signed_and_verify(bus: Bus, tmp_path: Path, pki: Pki) -> None:
    config = write_config(tmp_path, pki)
    async with Receiver(pki) as receiver:
        secret = await endpoint(bus, config, "acme", receiver.url("acme"))
        running = await start(bus, config)
        try:
            ids = await publish(bus, "acme", 5)
            # An operator event of the same tenant is never sent to it.
            await bus.publish(
                [EVENTS.out(Event(kind=EventKind.TENANT_CHANGED, tenant="acme", at=time.time()))]
            )
            acme = receiver.behaviour("acme")
            await receiver.wait_for(lambda: set(ids) <= set(acme.accepted), DEADLINE)
        finally:
            await running.stop()
    for request in acme.requests:
        stamp = int(request.headers["webhook-timestamp"])
        verify(secret, request.headers, request.body, now=stamp)
        (obj,) = request.events()
        assert request.headers["webhook-id"] == obj["id"]
        assert obj["type"] == "delivered"
        assert obj["data"]["tenant"] == "acme"
    assert set(acme.accepted) == set(ids)


async def test_a_receiver_that_fails_then_recovers_gets_every_event(
    bus: Bus, tmp_path: Path, pki: Pki
) -> None:
    config = write_config(tmp_path, pki)
    async with Receiver(pki) as receiver:
        await endpoint(bus, config, "flaky", receiver.url("flaky"))
        flaky = receiver.behaviour("flaky")
        flaky.fail_next = 6  # the circuit opens after 2: most events go to the tiers
        running = await start(bus, config)
        try:
            ids = await publish(bus, "flaky", 20)
            await receiver.wait_for(lambda: set(ids) <= set(flaky.accepted), DEADLINE)
            retried = running.stage.metrics.retries
        finally:
            await running.stop()
    assert flaky.fail_next == 0  # it did fail first
    assert set(flaky.accepted) == set(ids)  # none lost
    assert sum(s.value for m in retried.collect() for s in m.samples if s.name.endswith("_total"))


async def test_a_hanging_receiver_does_not_delay_another_tenant(
    bus: Bus, tmp_path: Path, pki: Pki
) -> None:
    config = write_config(tmp_path, pki)
    async with Receiver(pki) as receiver:
        await endpoint(bus, config, "slow", receiver.url("slow"))
        await endpoint(bus, config, "fast", receiver.url("fast"))
        slow, fast = receiver.behaviour("slow"), receiver.behaviour("fast")
        slow.hang = asyncio.Event()
        running = await start(bus, config)
        try:
            slow_ids = await publish(bus, "slow", 10)
            await receiver.wait_for(lambda: slow.hanging > 0, DEADLINE)
            fast_ids = await publish(bus, "fast", 10)
            await receiver.wait_for(lambda: set(fast_ids) <= set(fast.accepted), DEADLINE)
            # Causality: every one of B's webhooks arrived while A's request still hangs.
            assert slow.hanging > 0 and not slow.accepted
            slow.hang.set()
            await receiver.wait_for(lambda: set(slow_ids) <= set(slow.accepted), DEADLINE)
        finally:
            await running.stop()
    assert set(fast.accepted) == set(fast_ids)


async def test_events_of_tenants_without_endpoints_are_committed(
    bus: Bus, tmp_path: Path, pki: Pki
) -> None:
    config = write_config(tmp_path, pki)
    running = await start(bus, config)
    try:
        await publish(bus, "nobody", 3)
        loop = running.stage.events
        assert loop is not None
        consumer = loop.consumer

        async def committed() -> int:
            total = 0
            for tp in consumer.assignment():
                total += max(0, await consumer.committed(tp))
            return total

        deadline = asyncio.get_running_loop().time() + DEADLINE
        while await committed() < 3:
            assert asyncio.get_running_loop().time() < deadline, "events never committed"
            await asyncio.sleep(0.2)
    finally:
        await running.stop()
    assert GROUP == "postline-webhooks"


async def test_an_endpoint_failing_for_long_is_paused_and_resumes_with_every_event(
    bus: Bus, tmp_path: Path, pki: Pki
) -> None:
    config = write_config(tmp_path, pki)
    config.core.webhooks.update(pause_after_failures=3, pause_after="0s", paused_hold="2s")
    async with Receiver(pki) as receiver:
        await endpoint(bus, config, "down", receiver.url("down"))
        down = receiver.behaviour("down")
        down.fail_next = 1_000_000  # down until the operator fixes it
        running = await start(bus, config)
        try:
            ids = await publish(bus, "down", 5)

            async def paused() -> Tenant:
                while True:
                    tenant = running.stage.tenants.get("down")
                    assert tenant is not None
                    if tenant.webhooks[0].status.state is TenantState.PAUSED:
                        return tenant
                    await asyncio.sleep(0.1)

            tenant = await asyncio.wait_for(paused(), DEADLINE)
            assert tenant.webhooks[0].status.by == "webhooks"
            down.fail_next = 0  # fixed; the operator resumes it
            await admin.set_state(
                bus, tenant, tenant.webhooks[0].id, TenantState.ACTIVE, by="test", why="fixed"
            )
            await receiver.wait_for(lambda: set(ids) <= set(down.accepted), DEADLINE)
        finally:
            await running.stop()
    kinds = [
        (e.classification, e.by)
        async for e in _events(bus)
        if e.kind is EventKind.WEBHOOK and e.tenant == "down"
    ]
    assert kinds == [("paused", "webhooks"), ("resumed", "test")]


async def _events(bus: Bus) -> AsyncIterator[Event]:
    async for message in bus.read_to_end(EVENTS.name):
        if message.value is not None:
            yield EVENTS.decode(message.value)


async def test_replay_sends_a_time_range_again_with_the_same_ids(
    bus: Bus, tmp_path: Path, pki: Pki
) -> None:
    config = write_config(tmp_path, pki)
    async with Receiver(pki) as receiver:
        await endpoint(bus, config, "again", receiver.url("again"))
        again = receiver.behaviour("again")
        running = await start(bus, config)
        try:
            ids = await publish(bus, "again", 4)
            await receiver.wait_for(lambda: set(ids) <= set(again.accepted), DEADLINE)
            tenant = await tenant_admin.get(bus, "again")
            written = await replay(
                bus, tenant, running.stage.schedule.first, since=0.0, until=time.time() + 1
            )
            assert written == 4
            await receiver.wait_for(
                lambda: all(again.accepted.count(i) == 2 for i in ids), DEADLINE
            )
        finally:
            await running.stop()
    assert sorted(again.accepted) == sorted(ids * 2)
