"""The retention loop on a real database with an injected clock: expired days go, coming
partitions come, the gauge follows; a failing pass is skipped, not fatal."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.store.metrics import StoreMetrics, StoreSensor
from services.store.retention import RetentionLoop
from shared.config import load_config
from shared.store.db import Database, open_database
from shared.store.writer import write_batch
from shared.wire.records import EventKind
from testing.stage import stage_context
from testing.store import AT, count, event

DAY = 86400.0


def loop_on(db: Database, tmp_path: Path, now: float) -> RetentionLoop:
    path = tmp_path / "postline.toml"
    path.write_text("")
    ctx = stage_context("store", load_config(path, environ={}), bus=None)  # type: ignore[arg-type]
    return RetentionLoop(
        ctx,
        db,
        StoreSensor(StoreMetrics(ctx.registry)),
        default_days=30,
        ahead=2,
        interval=3600,
        clock=lambda: now,
        tenant_days=lambda: {"brief": 3},
    )


async def test_a_pass_expires_and_counts(db: Database, tmp_path: Path) -> None:
    await write_batch(
        db,
        [
            event(EventKind.DELIVERED, "old", tenant="acme", at=AT - 35 * DAY),
            event(EventKind.DELIVERED, "new", tenant="acme", at=AT),
            event(EventKind.DELIVERED, "b-old", tenant="brief", at=AT - 5 * DAY),
            event(EventKind.DELIVERED, "b-new", tenant="brief", at=AT),
        ],
    )
    loop = loop_on(db, tmp_path, AT)
    done = await loop.once()
    assert done is not None and done.dropped == [20261102]
    assert await count(db, "events") == 2
    registry: CollectorRegistry = loop.ctx.registry
    assert registry.get_sample_value("postline_store_expired_days_total") == 1
    # PostgreSQL: today, 2 ahead, and brief's old day (its rows deleted, the day kept for
    # acme's 30 days); SQLite counts days with rows: today.
    expected = 4 if db.dialect == "postgres" else 1
    assert registry.get_sample_value("postline_store_partitions") == expected


async def test_a_failed_pass_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = await open_database(f"sqlite://{tmp_path / 'empty.sqlite3'}")  # never migrated
    try:
        with caplog.at_level(logging.WARNING):
            assert await loop_on(db, tmp_path, AT).once() is None
        assert "retention pass failed" in caplog.text
    finally:
        await db.close()
