"""follow_topic keeps a table current through bus failures (real embedded bus, injected fault)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from shared.bus.base import BusMessage
from shared.bus.embedded import EmbeddedBus
from shared.bus.follow import follow_topic
from shared.config import EmbeddedConfig
from shared.wire.topics import OutRecord
from testing.faultybus import FaultyBus

TOPIC = "test.table"


async def until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_a_bus_failure_restarts_the_follow_instead_of_ending_it(tmp_path: Path) -> None:
    inner = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=1))
    await inner.start()
    bus = FaultyBus(inner)
    seen: list[bytes] = []
    restarts: list[int] = []
    stopping = asyncio.Event()

    def apply(message: BusMessage) -> None:
        assert message.value is not None
        seen.append(message.value)

    follower = asyncio.create_task(
        follow_topic(
            bus,
            TOPIC,
            apply,
            stopping,
            logging.getLogger("test"),
            restarted=lambda: restarts.append(len(seen)),
            pause=0.05,
        )
    )
    try:
        await inner.publish([OutRecord(TOPIC, b"k1", b"one")])
        await until(lambda: seen == [b"one"])
        bus.switch.failing = True
        await inner.publish([OutRecord(TOPIC, b"k2", b"two")])
        await until(lambda: bus.switch.refused >= 2)  # failed, paused, failed again
        assert not follower.done()  # the follower did not end with the failure
        bus.switch.failing = False
        await until(lambda: seen[-2:] == [b"one", b"two"])  # followed again from the start
        assert restarts and restarts[0] == 1
    finally:
        stopping.set()
        await inner.close()
        await asyncio.wait_for(follower, 10)
