"""The store stage running in the test process on a real bus, and what tests ask of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from services.store.stage import GROUP, StoreStage, create
from shared.bus.base import Bus, TopicPartition
from shared.config import load_config
from shared.runtime.stage import StageContext
from shared.wire.records import Event, EventKind
from shared.wire.topics import EVENTS
from testing.stage import stage_context
from testing.store import AT

DEADLINE = 60.0


@dataclass
class Running:
    """One store stage running in this process."""

    ctx: StageContext
    stage: StoreStage
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Drain and wait for the stage to return."""
        self.ctx.stopping.set()
        await asyncio.wait_for(self.task, DEADLINE)

    def metric(self, name: str, **labels: str) -> float:
        """A metric's value (0 when never set)."""
        return self.ctx.registry.get_sample_value(name, labels) or 0.0


async def start_store(
    bus: Bus, tmp_path: Path, section: str, *, ready: bool = True, clock: float = AT
) -> Running:
    """Start the stage with ``[store]`` = ``section`` (TOML lines), data under ``tmp_path``."""
    path = tmp_path / "postline.toml"
    path.write_text(f'[runtime]\ndata_dir = "{tmp_path / "data"}"\n\n[store]\n{section}\n')
    ctx = stage_context("store", load_config(path, environ={}), bus)
    stage = await create(ctx, clock=lambda: clock)
    assert isinstance(stage, StoreStage)
    task = asyncio.create_task(stage.run(ctx))
    if ready:
        await asyncio.wait_for(ctx.wait_ready(), DEADLINE)
    return Running(ctx, stage, task)


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for ``check`` to hold (fails past the deadline)."""
    deadline = time.monotonic() + DEADLINE
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


def messages(count: int, *, first: int = 0, tenant: str = "acme") -> list[Event]:
    """``count`` messages' accepted and delivered events, and an asynchronous bounce (no
    tenant, no sender: attributed through the message) for every fifth."""
    out: list[Event] = []
    for n in range(first, first + count):
        mid = f"{tenant}-{n:05d}"
        common = {"message_id": mid, "at": AT + n, "tags": {"campaign": "spring"}}
        out.append(
            Event(
                kind=EventKind.ACCEPTED,
                tenant=tenant,
                sender="news@shop.example",
                recipients=1,
                subject=f"Offer {n}",
                **common,  # type: ignore[arg-type]
            )
        )
        out.append(
            Event(
                kind=EventKind.DELIVERED,
                tenant=tenant,
                sender="news@shop.example",
                recipient=f"r{n}@example.net",
                domain="example.net",
                provider="other",
                **common,  # type: ignore[arg-type]
            )
        )
        if n % 5 == 0:
            out.append(
                Event(
                    kind=EventKind.BOUNCED,
                    message_id=mid,
                    at=AT + n + 1800,
                    recipient=f"r{n}@example.net",
                    classification="hard",
                    reason="userunknown",
                    stage="bouncer",
                )
            )
    return out


async def publish(bus: Bus, events: list[Event]) -> None:
    """Publish ``events`` on ``postline.events``."""
    await bus.publish([EVENTS.out(e) for e in events])


async def rewind_group(bus: Bus) -> None:
    """Commit offset 0 for every partition of the store's group: as if every offset commit
    had been lost after the database committed (the replay a crash in between causes)."""
    consumer = bus.consumer(GROUP, [EVENTS.name])
    await consumer.start()
    try:
        for _ in range(50):
            if consumer.assignment():
                break
            await consumer.fetch(1, 0.2)
        owned: frozenset[TopicPartition] = consumer.assignment()
        async with consumer.transaction() as txn:
            txn.commit_offsets(dict.fromkeys(owned, 0))
    finally:
        await consumer.stop()
