"""An erased address's events from before the erasure are not written back into the store:
neither those still in the stage's lag nor a replay of the whole topic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.store.erased import ErasedAddresses
from shared.addresshash import address_hash
from shared.bus.base import Bus
from shared.store.gdpr import erase_address
from shared.wire.records import Event, EventKind
from testing.buses import bus_of_kind
from testing.store import AT, store_database
from testing.storestage import publish, rewind_group, start_store, until

KEY = "ab" * 32
ERASED = "ann@example.net"


@pytest.fixture
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    opened = bus_of_kind("embedded", request, tmp_path, "store-erased", partitions=1)
    await opened.start()
    yield opened
    await opened.close()


def delivered(message: str, recipient: str, at: float, tenant: str = "acme") -> Event:
    return Event(
        kind=EventKind.DELIVERED, message_id=message, at=at, tenant=tenant, recipient=recipient
    )


async def _count(db, where: str = "") -> int:  # type: ignore[no-untyped-def]
    return int(await db.fetchval(f"SELECT count(*) FROM events{where}"))


async def test_a_replay_after_an_erasure_does_not_bring_the_address_back(
    bus: Bus, tmp_path: Path, url: str
) -> None:
    (tmp_path / "data" / "secrets").mkdir(parents=True)
    (tmp_path / "data" / "secrets" / "gdpr.key").write_text(KEY + "\n")
    before = [
        delivered("01" * 16, ERASED, AT),
        delivered("02" * 16, "bob@example.net", AT + 1),
        delivered("03" * 16, ERASED.upper(), AT + 2),  # the same address, other case
    ]
    await publish(bus, before)
    running = await start_store(bus, tmp_path, f'url = "{url}"')
    async with store_database(url) as db:
        await until(lambda: _has(db, 3), "first events stored")
        await running.stop()
        await erase_address(
            db,
            ERASED,
            tenant="",
            address_hash=address_hash(KEY.encode(), ERASED),
            by="test",
            at=AT + 10,
        )
        assert await _count(db) == 1

        # Every offset commit lost (or a store rebuilt from the topic): all read again; and
        # a new event about the address after its erasure (a suppressed attempt) is kept.
        await rewind_group(bus)
        await publish(bus, [delivered("04" * 16, ERASED, AT + 20)])
        again = await start_store(bus, tmp_path, f'url = "{url}"')
        await until(lambda: _has(db, 2), "the new event stored")
        await again.stop()
        assert again.metric("postline_store_erased_skipped_total") == 2
        rows = await db.fetch("SELECT recipient, at FROM events ORDER BY at")
        assert [(r["recipient"], r["at"]) for r in rows] == [
            ("bob@example.net", AT + 1),
            (ERASED, AT + 20),
        ]


async def _has(db, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await _count(db) >= n


async def test_a_tenant_erasure_keeps_other_tenants_events(tmp_path: Path) -> None:
    async with store_database(f"sqlite://{tmp_path / 'store.sqlite3'}") as db:
        await db.execute(
            "INSERT INTO erasures (at, tenant, address_hash, by, counts)"
            " VALUES ($1, 'acme', $2, 'test', '{}')",
            AT + 10,
            address_hash(KEY.encode(), ERASED),
        )
        erased = ErasedAddresses(KEY.encode)
        await erased.refresh(db)
    mine, theirs, unnamed = (
        delivered("01" * 16, ERASED, AT),
        delivered("02" * 16, ERASED, AT, tenant="globex"),
        delivered("03" * 16, ERASED, AT, tenant=""),
    )
    assert erased.erased_event(mine) and erased.erased_event(unnamed)
    assert not erased.erased_event(theirs)
    assert erased.keep([(b"", mine), (b"", theirs)]) == [(b"", theirs)]


async def test_without_a_key_nothing_is_skipped(tmp_path: Path) -> None:
    async with store_database(f"sqlite://{tmp_path / 'store.sqlite3'}") as db:
        await db.execute(
            "INSERT INTO erasures (at, tenant, address_hash, by, counts)"
            " VALUES ($1, '', 'ff', 'test', '{}')",
            AT,
        )
        erased = ErasedAddresses(lambda: None)
        await erased.refresh(db)
    assert erased.unmatched == 1
    assert not erased.erased_event(delivered("01" * 16, ERASED, AT))
