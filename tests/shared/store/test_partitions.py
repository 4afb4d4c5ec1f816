"""Daily partitions made ahead and dropped at retention; shorter tenant retention."""

from __future__ import annotations

from shared.store import partitions
from shared.store.db import Database
from shared.store.writer import write_batch
from shared.wire.records import EventKind
from testing.store import AT, count, event

DAY = 86400.0


def test_day_arithmetic() -> None:
    assert partitions.next_day(20261231) == 20270101
    assert partitions.next_day(20280228) == 20280229
    assert partitions.upcoming(AT, 2) == [20261207, 20261208, 20261209]
    assert partitions.cutoff(AT, 30) == 20261107
    assert partitions.partition_name("events", 20261207) == "events_p20261207"


async def _fill(db: Database, days_ago: list[int], tenant: str = "acme") -> None:
    batch = [
        event(EventKind.DELIVERED, f"{tenant}-{n}", tenant=tenant, at=AT - n * DAY)
        for n in days_ago
    ]
    batch += [
        event(EventKind.ACCEPTED, f"{tenant}-{n}", tenant=tenant, at=AT - n * DAY) for n in days_ago
    ]
    await write_batch(db, batch)


async def test_partitions_made_ahead_and_dropped(db: Database) -> None:
    await _fill(db, [40, 31, 30, 1, 0])
    result = await partitions.run_retention(db, now=AT, default_days=30, ahead=2)
    assert result.dropped == [20261028, 20261106]
    assert await count(db, "events") == 6  # accepted and delivered, 3 days
    assert await count(db, "messages") == 3
    assert await count(db, "rollup_hourly", "day < 20261107") == 0
    assert await count(db, "rollup_hourly", "day >= 20261107") == 3
    have = await partitions.existing(db)
    if db.dialect == "postgres":
        assert {20261207, 20261208, 20261209} <= have  # made ahead
        assert 20261028 not in have and 20261106 not in have
        names = await db.fetch(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'events_p%' ORDER BY 1"
        )
        assert "events_p20261028" not in [r["tablename"] for r in names]
        assert result.partitions == len(have)
    else:
        assert have == {20261107, 20261206, 20261207}
    # A second pass finds nothing more to do.
    again = await partitions.run_retention(db, now=AT, default_days=30, ahead=2)
    assert again.dropped == [] and again.made == []


async def test_a_tenant_with_a_shorter_retention(db: Database) -> None:
    await _fill(db, [20, 5, 0], tenant="brief")
    await _fill(db, [20, 5, 0], tenant="acme")
    await partitions.run_retention(db, now=AT, default_days=30, tenant_days={"brief": 7})
    assert await count(db, "events", "tenant = 'brief' AND kind = 'delivered'") == 2
    assert await count(db, "events", "tenant = 'acme' AND kind = 'delivered'") == 3
    assert await count(db, "rollup_hourly", "tenant = 'brief'") == 2


async def test_a_tenant_with_a_longer_retention_keeps_the_days(db: Database) -> None:
    await _fill(db, [40, 0], tenant="keeper")
    await _fill(db, [40, 0], tenant="acme")
    await partitions.run_retention(db, now=AT, default_days=30, tenant_days={"keeper": 60})
    assert await count(db, "events", "tenant = 'keeper' AND kind = 'delivered'") == 2
    assert await count(db, "events", "tenant = 'acme' AND kind = 'delivered'") == 1
