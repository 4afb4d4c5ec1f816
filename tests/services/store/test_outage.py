"""A database that is away at start, then goes away mid-run: the stage waits (unready),
dead-letters nothing, and catches up once it answers. A real PostgreSQL behind a loopback
forwarder the test takes down and brings back (the shared server itself is never touched)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from services.store.outage import CONDITION
from shared.bus.base import Bus
from shared.store.db import Database
from shared.wire.topics import DEAD
from testing.buses import bus_of_kind
from testing.store import count, rollup, store_database
from testing.storestage import messages, publish, start_store, until
from testing.tcpproxy import TcpProxy
from testing.topics import read_all


@pytest.fixture
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    opened = bus_of_kind("embedded", request, tmp_path, "store", partitions=2)
    await opened.start()
    yield opened
    await opened.close()


@pytest.fixture
async def proxied(postgres_db: str) -> AsyncIterator[tuple[str, TcpProxy]]:
    """A fresh database's URL through a forwarder, and the forwarder."""
    parts = urlsplit(postgres_db)
    proxy = await TcpProxy.start(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}"
    try:
        yield urlunsplit(parts._replace(netloc=netloc)), proxy
    finally:
        await proxy.close()


async def test_a_database_outage_waits_and_catches_up(
    bus: Bus, tmp_path: Path, postgres_db: str, proxied: tuple[str, TcpProxy]
) -> None:
    url, proxy = proxied
    proxy.down()  # away at start: the stage waits for it, unready
    await publish(bus, messages(10))
    running = await start_store(
        bus, tmp_path, f'url = "{url}"\nbatch = 8\nmax_backoff = "1s"', ready=False
    )
    await until(_unready(running.ctx), "unready while the database is away")
    await asyncio.sleep(1.5)
    assert not running.task.done()  # waiting, not crashed
    proxy.up()
    async with store_database(postgres_db) as db:
        await until(lambda: _has(db, 22), "stored once the database answers")
        assert running.ctx.ready

        proxy.down()  # away mid-run: the batches wait on the topic
        await publish(bus, messages(10, first=10))
        await until(_unready(running.ctx), "unready during the outage")
        await asyncio.sleep(2)
        assert await count(db, "events") == 22
        assert running.metric("postline_store_database_unavailable") == 1
        assert running.metric("postline_store_batch_errors_total", reason="unavailable") >= 1
        proxy.up()
        await until(lambda: _has(db, 44), "caught up after the outage")
        await until(lambda: _ready(running), "ready again")
        assert running.metric("postline_store_database_unavailable") == 0
        await running.stop()
        assert await count(db, "events") == 44
        assert await rollup(db, "accepted") == 20
        assert await rollup(db, "bounced_hard", "tenant = 'acme'") == 4
    assert await read_all(bus, DEAD.name) == []


def _unready(ctx: object) -> object:
    async def check() -> bool:
        return CONDITION in ctx.unready_reasons  # type: ignore[attr-defined]

    return check


async def _ready(running: object) -> bool:
    return bool(running.ctx.ready)  # type: ignore[attr-defined]


async def _has(db: Database, n: int) -> bool:
    return await count(db, "events") >= n
