"""The store stage on the embedded bus (and Kafka): events stored with their rollups, a
restart that replays everything stores nothing twice, undecodable records dead-lettered, a
database from a newer Postline refused."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.store.stage import create
from shared.bus.base import Bus
from shared.config import load_config
from shared.errors import SchemaTooNew
from shared.store.db import open_database
from shared.store.migrate import LATEST
from shared.wire.records import DeadLetter, Event, EventKind
from shared.wire.topics import DEAD, EVENTS, OutRecord
from testing.buses import bus_of_kind
from testing.stage import stage_context
from testing.store import AT, count, rollup, store_database
from testing.storestage import messages, publish, rewind_group, start_store, until
from testing.topics import read_all


@pytest.fixture
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    opened = bus_of_kind("embedded", request, tmp_path, "store", partitions=3)
    await opened.start()
    yield opened
    await opened.close()


async def test_stored_then_a_replay_after_restart_adds_nothing(
    bus: Bus, tmp_path: Path, url: str
) -> None:
    first = messages(30)
    await publish(bus, first)
    running = await start_store(bus, tmp_path, f'url = "{url}"\nbatch = 25')
    async with store_database(url) as db:
        await until(lambda: _has(db, len(first)), "first events stored")
        await running.stop()
        assert running.metric("postline_store_events_written_total") == len(first)
        assert await rollup(db, "accepted") == 30
        # The bouncer's bounces name no tenant: counted for acme through their messages.
        assert await rollup(db, "bounced_hard", "tenant = 'acme' AND campaign = 'spring'") == 6

        # Every offset commit lost: the restarted stage reads everything again, plus more.
        await rewind_group(bus)
        more = messages(10, first=30)
        await publish(bus, more)
        again = await start_store(bus, tmp_path, f'url = "{url}"\nbatch = 25')
        await until(lambda: _has(db, len(first) + len(more)), "replay and new events")
        await until(
            lambda: _metric_at_least(again, "postline_store_duplicates_total", len(first)),
            "replay counted as duplicates",
        )
        await again.stop()
        assert again.metric("postline_store_events_written_total") == len(more)
        assert await count(db, "events") == len(first) + len(more)
        assert await count(db, "messages") == 40
        assert await rollup(db, "accepted") == 40
        assert await rollup(db, "delivered") == 40
        assert await rollup(db, "bounced_hard", "tenant = 'acme'") == 8
        assert await read_all(bus, DEAD.name) == []


async def test_default_sqlite_file_and_an_undecodable_record(bus: Bus, tmp_path: Path) -> None:
    events = messages(4)
    await bus.publish(
        [
            *(EVENTS.out(e) for e in events[:3]),
            OutRecord(EVENTS.name, b"acme-00001", b"\xc1 not msgpack"),
            *(EVENTS.out(e) for e in events[3:]),
        ]
    )
    running = await start_store(bus, tmp_path, "batch = 2")
    path = tmp_path / "data" / "store.sqlite3"
    async with store_database(f"sqlite://{path}") as db:
        await until(lambda: _has(db, len(events)), "the decodable events stored")
    await running.stop()
    [dead] = [DEAD.decode(m.value) for m in await read_all(bus, DEAD.name) if m.value]
    assert isinstance(dead, DeadLetter)
    assert dead.value == b"\xc1 not msgpack" and dead.reason.startswith("decode:")
    assert dead.group == "postline-store"


async def test_a_database_from_a_newer_postline_is_refused(
    bus: Bus, tmp_path: Path, url: str
) -> None:
    async with store_database(url) as db:
        await db.execute(
            "INSERT INTO store_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            LATEST + 1,
            "from_the_future",
            AT,
        )
    path = tmp_path / "postline.toml"
    path.write_text(f'[store]\nurl = "{url}"\n')
    ctx = stage_context("store", load_config(path, environ={}), bus)
    with pytest.raises(SchemaTooNew, match="newer Postline"):
        await create(ctx)


@pytest.mark.kafka
async def test_on_kafka(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    kafka = bus_of_kind("kafka", request, tmp_path, "store", partitions=3)
    await kafka.start()
    try:
        await kafka.ensure_topics([EVENTS.name, DEAD.name])
        events = messages(20)
        await publish(kafka, events)
        url = f"sqlite://{tmp_path / 'kafka-store.sqlite3'}"
        running = await start_store(kafka, tmp_path, f'url = "{url}"\nbatch = 16')
        async with store_database(url) as db:
            await until(lambda: _has(db, len(events)), "events from Kafka stored")
            await running.stop()
            await rewind_group(kafka)
            again = await start_store(kafka, tmp_path, f'url = "{url}"')
            await until(
                lambda: _metric_at_least(again, "postline_store_duplicates_total", len(events)),
                "the replay seen",
            )
            await again.stop()
            assert await count(db, "events") == len(events)
            assert await rollup(db, "accepted") == 20
    finally:
        await kafka.close()


async def _has(db: object, n: int) -> bool:
    return await count(db, "events") >= n  # type: ignore[arg-type]


async def _metric_at_least(running: object, name: str, n: float) -> bool:
    return running.metric(name) >= n  # type: ignore[attr-defined,no-any-return]


async def _open(url: str) -> None:
    db = await open_database(url)
    await db.close()


async def test_a_record_the_database_refuses_is_dead_lettered(
    bus: Bus, tmp_path: Path, postgres_db: str
) -> None:
    events = messages(3)
    # Past PostgreSQL's largest index entry (about 2.7 kB): refused, whatever is retried.
    huge = "x" + os.urandom(1600).hex() + "@example.net"
    refused = Event(kind=EventKind.DELIVERED, message_id="acme-00001", at=AT, recipient=huge)
    await publish(bus, [*events[:2], refused, *events[2:]])
    async with store_database(postgres_db) as db:
        running = await start_store(bus, tmp_path, f'url = "{postgres_db}"')
        await until(lambda: _has(db, len(events)), "the others stored")
        dead = [DEAD.decode(m.value) for m in await read_all(bus, DEAD.name) if m.value]
        await running.stop()
        assert await count(db, "events") == len(events)
    assert [d.reason.split(":")[0] for d in dead] == ["failed"]
    assert "PostgreSQL refused" in dead[0].reason
    assert running.metric("postline_store_batch_errors_total", reason="refused") >= 1
