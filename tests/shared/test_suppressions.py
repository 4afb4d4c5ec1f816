"""The live suppression table: snapshot, tombstones, scoped entries, following the topic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.addresshash import address_hash
from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig
from shared.errors import ConfigError
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


def test_an_erased_address_matches_by_its_keyed_hash_in_every_scope() -> None:
    """``postline gdpr erase`` leaves entries keyed by the address's keyed hash; with the key
    they suppress exactly as the address's own did, and only that address."""
    key = b"0123456789abcdef0123456789abcdef"
    table = SuppressionTable(hash_key=key)
    digest = address_hash(key, "Gone@Dest.test")
    for tenant, scope in (("", ""), ("a", ""), ("", "news.a.test")):
        record = Suppression(
            address="",
            address_hash=digest,
            reason=SuppressionReason.COMPLAINT,
            at=1.0,
            tenant=tenant,
            scope=scope,
        )
        assert b"gone@" not in SUPPRESSIONS.key(record)
        table.apply(SUPPRESSIONS.key(record), SUPPRESSIONS.encode(record))
    assert table.is_suppressed("gone@dest.test", tenant="b")  # the global one
    assert table.is_suppressed(" GONE@dest.test ")
    assert not table.is_suppressed("other@dest.test")
    scoped = SuppressionTable(hash_key=key)
    record = Suppression(
        address="", address_hash=digest, reason=SuppressionReason.COMPLAINT, at=1.0, tenant="a"
    )
    scoped.apply(SUPPRESSIONS.key(record), SUPPRESSIONS.encode(record))
    assert scoped.is_suppressed("gone@dest.test", tenant="a")
    assert not scoped.is_suppressed("gone@dest.test", tenant="b")
    # Without the key (or with another one) the hashed entries match nothing.
    assert not SuppressionTable(hash_key=b"another key, 32 bytes long......").is_suppressed(
        "gone@dest.test"
    )


async def test_hashed_entries_without_the_key_refuse_to_load(bus: EmbeddedBus) -> None:
    record = Suppression(
        address="", address_hash="ab" * 32, reason=SuppressionReason.UNSUBSCRIBE, at=1.0
    )
    await bus.publish([SUPPRESSIONS.out(record), SUPPRESSIONS.out(suppression("x@d.test"))])
    missing = ConfigError("test.toml", "secrets.gdpr_hash_key_file", "missing")
    with pytest.raises(ConfigError, match="gdpr_hash_key_file"):
        await SuppressionTable(missing_key=missing).load(bus)
    keyed = SuppressionTable(hash_key=b"k" * 32, missing_key=missing)
    await keyed.load(bus)
    assert keyed.is_suppressed("x@d.test") and len(keyed) == 2


async def test_an_erasure_while_following_without_the_key_is_logged(
    bus: EmbeddedBus, caplog: pytest.LogCaptureFixture
) -> None:
    missing = ConfigError("test.toml", "secrets.gdpr_hash_key_file", "missing")
    table = SuppressionTable(missing_key=missing)
    await table.load(bus)
    stopping = asyncio.Event()
    task = asyncio.create_task(table.follow(bus, stopping, logging.getLogger("test")))
    await bus.publish([SUPPRESSIONS.out(suppression("plain@dest.test"))])
    await until(lambda: table.is_suppressed("plain@dest.test"))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    hashed = Suppression(
        address="", address_hash="cd" * 32, reason=SuppressionReason.UNSUBSCRIBE, at=1.0
    )
    await bus.publish([SUPPRESSIONS.out(hashed)])
    await until(lambda: len(table) == 2)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["suppression of an erased address unmatched"]
    stopping.set()
    task.cancel()
