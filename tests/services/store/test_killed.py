"""A store stage killed with SIGKILL mid-stream (its last batches committed to the database
but not on the bus) restarts and ends with every event once: no duplicates, exact rollups."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig
from shared.wire.topics import DEAD
from testing.store import count, rollup, store_database
from testing.storestage import messages, publish, start_store, until
from testing.topics import read_all

ROOT = Path(__file__).resolve().parents[3]


async def test_killed_mid_stream_resumes_without_duplicates(tmp_path: Path, url: str) -> None:
    events = messages(1500)  # 3300 events: the kill lands between batches of 20
    bus_path = tmp_path / "bus.db"
    bus = EmbeddedBus(EmbeddedConfig(path=bus_path, partitions=3))
    await bus.start()
    await publish(bus, events)
    await bus.close()  # the embedded bus has one owner: the stage's process now

    config = tmp_path / "postline.toml"
    config.write_text(
        f'[embedded]\npath = "{bus_path}"\npartitions = 3\n\n[store]\nurl = "{url}"\nbatch = 20\n'
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "testing.storeproc", str(config), cwd=ROOT, env=env
    )
    async with store_database(url) as db:
        try:
            await until(lambda: _has(db, 400), "the stage writing")
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        stored = await count(db, "events")
        assert stored < len(events), "killed before the end"

        bus = EmbeddedBus(EmbeddedConfig(path=bus_path, partitions=3))
        await bus.start()
        try:
            again = await start_store(bus, tmp_path, f'url = "{url}"\nbatch = 200')
            await until(lambda: _has(db, len(events)), "the rest stored after the restart")
            await asyncio.sleep(0.5)  # anything replayed twice would land by now
            await again.stop()
            assert await read_all(bus, DEAD.name) == []
        finally:
            await bus.close()
        assert await count(db, "events") == len(events)
        assert await count(db, "messages") == 1500
        assert await rollup(db, "accepted") == 1500
        assert await rollup(db, "delivered") == 1500
        assert await rollup(db, "bounced_hard") == 300


async def _has(db: object, n: int) -> bool:
    return await count(db, "events") >= n  # type: ignore[arg-type]
