"""Export and erasure of an address in the store (``shared.store.gdpr``), on a real SQLite file
and a real PostgreSQL database, with rows inserted in plain SQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.addresshash import address_hash
from shared.store.db import Database, open_database
from shared.store.gdpr import erase_address, erasures, export_address
from testing.gdpr_rows import AT, add_event, add_message, all_rows, prepare

KEY = b"k" * 32
BOB = "bob@dest.test"
M1, M2, M3, M4 = "a" * 32, "b" * 32, "c" * 32, "d" * 32


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = await open_database(f"sqlite:///{tmp_path}/store.sqlite3")
        await prepare(database)
        yield database
        await database.close()
        return
    from testing.postgres import fresh_database  # noqa: PLC0415 - asyncpg

    # postgres_dsn skips (or fails under CI) without a server; async fixtures cannot be
    # requested by name from an async fixture, so the fresh database is made here.
    async with fresh_database(request.getfixturevalue("postgres_dsn")) as url:
        database = await open_database(url)
        await prepare(database)
        yield database
        await database.close()


async def fill(db: Database) -> None:
    """Bob receives M1 (acme) and M3 (other), sends M2 (acme); an async bounce of M1 without
    a tenant; carol's mail (M4) is not about bob."""
    await add_message(db, M1, sender="news@acme.test")
    await add_event(db, "accepted", message_id=M1, sender="news@acme.test")
    await add_event(db, "delivered", message_id=M1, recipient=BOB, sender="news@acme.test")
    await add_event(db, "complained", message_id=M1, recipient=BOB, tenant="", at=AT + 60)
    await add_message(db, M2, sender=BOB)
    await add_event(db, "accepted", message_id=M2, sender=BOB)
    await add_event(db, "delivered", message_id=M2, recipient="x@y.test", sender=BOB)
    await add_message(db, M3, sender="shop@other.test", tenant="other")
    await add_event(db, "delivered", message_id=M3, recipient=BOB, tenant="other")
    await add_message(db, M4, sender="news@acme.test")
    await add_event(db, "delivered", message_id=M4, recipient="carol@dest.test")


async def test_export_finds_every_row_about_the_address(db: Database) -> None:
    await fill(db)
    found = await export_address(db, "  Bob@Dest.TEST ")
    kinds = sorted((e["kind"], e["message_id"]) for e in found["events"])
    assert kinds == [
        ("accepted", M2),
        ("complained", M1),
        ("delivered", M1),
        ("delivered", M2),
        ("delivered", M3),
    ]
    assert [m["message_id"] for m in found["messages"]] == [M2]
    event = found["events"][0]
    assert len(event["id"]) == 32 and isinstance(event["doc"], dict)  # JSON-able
    json.dumps(found)
    # One tenant's view: its own rows and its messages' events without a tenant.
    acme = await export_address(db, BOB, "acme")
    assert sorted(e["message_id"] for e in acme["events"]) == [M1, M1, M2, M2]
    other = await export_address(db, BOB, "other")
    assert [e["message_id"] for e in other["events"]] == [M3] and other["messages"] == []


async def test_erase_deletes_the_rows_and_records_the_erasure_without_the_address(
    db: Database,
) -> None:
    await fill(db)
    digest = address_hash(KEY, BOB)
    deleted = await erase_address(
        db,
        BOB,
        tenant="",
        address_hash=digest,
        by="cli:alice",
        at=AT + 3600,
        counts={"suppressions_hashed": 2},
    )
    assert deleted == {"events": 5, "messages": 1}
    assert await export_address(db, BOB) == {"events": [], "messages": []}
    # Other people's rows stay.
    left = await db.fetch("SELECT message_id, recipient FROM events ORDER BY message_id")
    assert [(r["message_id"], r["recipient"]) for r in left] == [
        (M1, ""),
        (M4, "carol@dest.test"),
    ]
    # The record: who, when, how many, the keyed hash; nowhere the address.
    assert await erasures(db, digest) == [
        {
            "at": AT + 3600,
            "tenant": "",
            "address_hash": digest,
            "by": "cli:alice",
            "counts": {"store_events": 5, "store_messages": 1, "suppressions_hashed": 2},
        }
    ]
    for row in await all_rows(db):
        assert "bob@" not in repr(row).lower(), row


async def test_erase_for_one_tenant_keeps_the_others(db: Database) -> None:
    await fill(db)
    deleted = await erase_address(
        db, BOB, tenant="acme", address_hash="h", by="cli:alice", at=AT + 1
    )
    assert deleted == {"events": 4, "messages": 1}
    rest = await export_address(db, BOB)
    assert [e["message_id"] for e in rest["events"]] == [M3]
    assert (await erasures(db))[0]["tenant"] == "acme"


async def test_erasing_twice_deletes_nothing_more(db: Database) -> None:
    await fill(db)
    first = await erase_address(db, BOB, tenant="", address_hash="h", by="t", at=AT)
    again = await erase_address(db, BOB, tenant="", address_hash="h", by="t", at=AT + 1)
    assert first["events"] == 5 and again == {"events": 0, "messages": 0}
    assert len(await erasures(db, "h")) == 2
