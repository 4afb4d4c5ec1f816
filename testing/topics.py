"""Reading what a stage published, for tests on a real bus."""

from __future__ import annotations

import asyncio
import uuid

from shared.bus.base import Bus, BusMessage

DEADLINE = 10.0


async def read_all(bus: Bus, topic: str) -> list[BusMessage]:
    """Every committed record of ``topic`` now, read by a fresh group."""
    consumer = bus.consumer(f"check-{uuid.uuid4().hex}", [topic])
    await consumer.start()
    try:
        messages: list[BusMessage] = []
        while batch := await consumer.fetch(500, 0.2):
            messages += batch
        return messages
    finally:
        await consumer.stop()


async def wait_count(
    bus: Bus, topic: str, count: int, deadline: float = DEADLINE
) -> list[BusMessage]:
    """The records of ``topic`` once there are at least ``count`` (fails past ``deadline``)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while len(messages := await read_all(bus, topic)) < count:
        assert loop.time() < end, f"{topic}: {len(messages)} records, wanted {count}"
        await asyncio.sleep(0.02)
    return messages
