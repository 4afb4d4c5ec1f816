"""A running deliverer on the embedded bus for integration tests, and its observations.

async with DnsServer(records) as dns, SmtpSink(...) as sink:
    async with running_deliverer(tmp_path, dns, smtp_port=sink.port) as d:
        await d.send(delivery("a@dest.test"))
        await d.wait_events(EventKind.DELIVERED, 1)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.deliverer.stage import DelivererStage, create
from shared.bus.base import Bus
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.config import Config, CoreConfig, EmbeddedConfig, KafkaConfig, RuntimeConfig
from shared.pools import PoolsConfig
from shared.runtime.stage import StageContext
from shared.wire.records import Delivery, Event, EventKind, new_id, now
from shared.wire.topics import DEAD, EVENTS, OUTBOUND, OUTBOUND_BULK, R, Topic, lane_of
from testing.dnsserver import DnsServer
from testing.stage import stage_context

BODY = b"From: a@sender.test\r\nTo: x@dest.test\r\nSubject: test\r\n\r\nHello.\r\n"


def delivery(*rcpts: str, **fields: Any) -> Delivery:
    """A fresh Delivery for ``rcpts`` (all in one domain)."""
    domain = rcpts[0].rpartition("@")[2]
    values: dict[str, Any] = {
        "message_id": new_id(),
        "delivery_id": new_id(),
        "domain": domain,
        "mail_from": "bounce@sender.test",
        "rcpt_to": rcpts,
        "data": BODY,
        "submitted_at": now(),
    }
    values.update(fields)
    return Delivery(**values)


@dataclass
class Running:
    """The deliverer under test and what it published."""

    bus: Bus
    ctx: StageContext
    stage: DelivererStage
    events: list[Event] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def send(self, *deliveries: Delivery) -> None:
        """Publish Deliveries on their lane: ``postline.outbound``, or
        ``postline.outbound.bulk`` for bulk ones, as the signer does."""
        await self.bus.publish([lane_of(d).out(d) for d in deliveries])

    def of(self, kind: EventKind) -> list[Event]:
        """Events of one kind, in arrival order."""
        return [e for e in self.events if e.kind is kind]

    async def wait_events(self, kind: EventKind, count: int, timeout: float = 15.0) -> list[Event]:
        """Wait (polling, with a deadline) until ``count`` events of ``kind`` arrived."""
        deadline = time.monotonic() + timeout
        while len(self.of(kind)) < count:
            if time.monotonic() > deadline:
                kinds = [(e.kind.value, e.recipient, str(e.reply)) for e in self.events]
                raise AssertionError(f"{len(self.of(kind))} of {count} {kind} events: {kinds}")
            await asyncio.sleep(0.02)
        return self.of(kind)

    async def settle(self, timeout: float = 15.0) -> None:
        """Wait until nothing is in flight and everything fetched is committed."""
        deadline = time.monotonic() + timeout
        while self.ctx.active or self.stage_pending():
            if time.monotonic() > deadline:
                raise AssertionError("deliverer did not settle")
            await asyncio.sleep(0.02)

    def stage_pending(self) -> int:
        return self.stage.pending


def deliverer_section(dns: DnsServer, smtp_port: int, **overrides: Any) -> dict[str, Any]:
    """A ``[deliverer]`` section for tests: loopback DNS, short timeouts and tiers."""
    section: dict[str, Any] = {
        "ehlo_name": "relay.postline.test",
        "nameservers": [f"127.0.0.1:{dns.port}"],
        "smtp_port": smtp_port,
        "flush_interval": "50ms",
        "timeouts": {
            "connect": "3s",
            "greeting": "5s",
            "mail": "5s",
            "rcpt": "5s",
            "data_init": "5s",
            "data_done": "5s",
            "idle": "2s",
            "dns": "2s",
        },
        "retry": {
            "tiers": ["1s", "2s"],
            "first_delay": "1s",
            "factor": 1.0,
            "max_delay": "2s",
            "jitter": 0.0,
        },
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(section.get(key), dict):
            section[key] = {**section[key], **value}
        else:
            section[key] = value
    return section


@contextlib.asynccontextmanager
async def running_deliverer(
    tmp_path: Path,
    section: dict[str, Any],
    partitions: int = 2,
    *,
    kafka: KafkaConfig | None = None,
    instance: str = "",
    wrap: Callable[[Bus], Bus] | None = None,
    pools: PoolsConfig | None = None,
    clock: Callable[[], float] | None = None,
    before: Callable[[Bus], Awaitable[None]] | None = None,
) -> AsyncIterator[Running]:
    """Start the deliverer stage on a fresh embedded bus (or on Kafka when ``kafka`` is
    given, with its own topic prefix); stop it (drained) on exit. ``wrap``: what the stage
    sees instead of the bus (a fault injector); the test itself uses the bus directly.
    ``pools``: the ``[pools]`` section; ``clock``: the stage's admission clock; ``before``:
    called with the bus before the stage starts (to publish the tables it reads at start)."""
    embedded = EmbeddedConfig(path=tmp_path / "bus.db", partitions=partitions)
    core = CoreConfig(
        embedded=embedded,
        runtime=RuntimeConfig(drain_timeout=10),
        deliverer=section,
        pools=pools if pools is not None else PoolsConfig(),
    )
    config = Config(core, "test.toml", {})
    bus: Bus = EmbeddedBus(embedded)
    if kafka is not None:
        # A restart with the same instance fences the predecessor's open transaction.
        bus = KafkaBus(kafka, instance=instance or f"test-{new_id()[:8]}")
    await bus.start()
    if kafka is not None:
        await bus.ensure_topics([OUTBOUND.name, OUTBOUND_BULK.name, EVENTS.name, DEAD.name])
    ctx = stage_context("deliverer", config, wrap(bus) if wrap is not None else bus)
    if before is not None:
        await before(bus)
    stage = await create(ctx)
    if clock is not None:
        stage.clock = clock
    running = Running(bus, ctx, stage)
    follower = asyncio.create_task(_collect(bus, running.events))
    task = running.task = asyncio.create_task(stage.run(ctx))
    try:
        await asyncio.wait_for(ctx.wait_ready(), 10)
        yield running
    finally:
        ctx.stopping.set()
        await asyncio.wait_for(task, 30)
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await bus.close()


async def read_topic(bus: Bus, topic: Topic[R], count: int, timeout: float = 10) -> list[R]:
    """The first ``count`` records of ``topic`` (waits for them, with a deadline)."""
    records: list[R] = []

    async def read() -> None:
        async for message in bus.follow(topic.name):
            if message.value is not None:
                records.append(topic.decode(message.value))
            if len(records) >= count:
                return

    await asyncio.wait_for(read(), timeout)
    return records


async def _collect(bus: Bus, events: list[Event]) -> None:
    async for message in bus.follow(EVENTS.name):
        if message.value is not None:
            events.append(EVENTS.decode(message.value))
