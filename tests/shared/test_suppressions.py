"""The live suppression table: snapshot, tombstones, scoped entries, following the topic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig
from shared.suppressions import SuppressionTable
from shared.wire.records import Suppression, SuppressionReason
from shared.wire.topics import SUPPRESSIONS

DEADLINE = 10.0


def suppression(address: str, scope: str = "") -> Suppression:
    return Suppression(address=address, reason=SuppressionReason.HARD_BOUNCE, at=1.0, scope=scope)


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=2))
    await bus.start()
    yield bus
    await bus.close()


def test_apply_and_scopes() -> None:
    table = SuppressionTable()
    table.apply(b"gone@dest.test", b"x")
    table.apply(b"example.test|scoped@dest.test", b"x")
    assert table.is_suppressed("GONE@dest.test")
    assert table.is_suppressed("gone@dest.test", sender_domain="any.test")
    assert table.is_suppressed("scoped@dest.test", sender_domain="example.test")
    assert not table.is_suppressed("scoped@dest.test", sender_domain="other.test")
    assert not table.is_suppressed("scoped@dest.test")
    table.apply(b"gone@dest.test", None)
    assert not table.is_suppressed("gone@dest.test")
    table.apply(None, b"x")  # keyless records are ignored
    assert len(table) == 1


def test_tenant_scopes() -> None:
    """Global entries hold for every tenant, a tenant's only for it, a tenant's domain entry
    only for its bulk mail from that domain; "" is the default tenant."""
    table = SuppressionTable()
    for record in (
        Suppression(address="all@dest.test", reason=SuppressionReason.HARD_BOUNCE, at=1.0),
        Suppression(
            address="a-only@dest.test", reason=SuppressionReason.COMPLAINT, at=1.0, tenant="a"
        ),
        Suppression(
            address="dflt@dest.test", reason=SuppressionReason.COMPLAINT, at=1.0, tenant="default"
        ),
        Suppression(
            address="bulk@dest.test",
            reason=SuppressionReason.UNSUBSCRIBE,
            at=1.0,
            tenant="a",
            scope="shop.a.test",
        ),
    ):
        table.apply(SUPPRESSIONS.key(record), SUPPRESSIONS.encode(record))
    assert table.is_suppressed("all@dest.test", tenant="a")
    assert table.is_suppressed("all@dest.test", tenant="b")
    assert table.is_suppressed("a-only@dest.test", tenant="a")
    assert not table.is_suppressed("a-only@dest.test", tenant="b")
    assert not table.is_suppressed("a-only@dest.test")
    assert table.is_suppressed("dflt@dest.test")
    assert table.is_suppressed("dflt@dest.test", tenant="default")
    assert not table.is_suppressed("dflt@dest.test", tenant="a")
    assert table.is_suppressed("bulk@dest.test", tenant="a", sender_domain="shop.a.test")
    assert not table.is_suppressed("bulk@dest.test", tenant="a")  # not bulk
    assert not table.is_suppressed("bulk@dest.test", tenant="b", sender_domain="shop.a.test")
    assert not table.is_suppressed("bulk@dest.test", tenant="a", sender_domain="other.test")


async def until(condition: object) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not condition():  # type: ignore[operator]
        assert loop.time() < end, "condition not met before the deadline"
        await asyncio.sleep(0.02)


async def test_load_then_follow(bus: EmbeddedBus) -> None:
    await bus.publish(
        [
            SUPPRESSIONS.out(suppression("old@dest.test")),
            SUPPRESSIONS.out(suppression("removed@dest.test")),
            SUPPRESSIONS.tombstone("removed@dest.test"),
        ]
    )
    table = SuppressionTable()
    await table.load(bus)
    assert table.is_suppressed("old@dest.test")
    assert not table.is_suppressed("removed@dest.test")
    stopping = asyncio.Event()
    task = asyncio.create_task(table.follow(bus, stopping, logging.getLogger("test")))
    await bus.publish([SUPPRESSIONS.out(suppression("new@dest.test", "example.test"))])
    await until(lambda: table.is_suppressed("new@dest.test", sender_domain="example.test"))
    await bus.publish([SUPPRESSIONS.tombstone("old@dest.test")])
    await until(lambda: not table.is_suppressed("old@dest.test"))
    stopping.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
