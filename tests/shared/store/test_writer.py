"""write_batch on SQLite and PostgreSQL: rows, idempotence, rollups, attribution."""

from __future__ import annotations

import pytest

from shared.errors import PoisonRecord
from shared.store.db import Database
from shared.store.writer import write_batch
from shared.wire.records import Event, EventKind, SmtpReply
from testing.store import AT, count, event, rollup

SPRING = {"campaign": "spring"}


def campaign() -> list[tuple[bytes, Event]]:
    """Two messages of tenant acme: accepted, delivered/bounced, an async bounce, opens."""
    return [
        event(
            EventKind.ACCEPTED,
            "m1",
            tenant="acme",
            sender="News@Shop.example",
            tags=SPRING,
            recipients=2,
            subject="Spring sale",
        ),
        event(
            EventKind.DELIVERED,
            "m1",
            tenant="acme",
            sender="news@shop.example",
            recipient="Alice@Example.net",
            domain="example.net",
            provider="other",
            tags=SPRING,
            reply=SmtpReply(code=250, enhanced="2.0.0", text="ok"),
        ),
        event(
            EventKind.BOUNCED,
            "m1",
            tenant="acme",
            sender="news@shop.example",
            recipient="bob@example.org",
            domain="example.org",
            provider="other",
            tags=SPRING,
            classification="bounced",
            reason="userunknown",
            reply=SmtpReply(code=550, enhanced="5.1.1", text="no such user"),
        ),
        event(EventKind.OPENED, "m1", recipient="alice@example.net", machine=True),
        event(EventKind.OPENED, "m1", recipient="alice@example.net", at=AT + 60),
        event(EventKind.CLICKED, "m1", recipient="alice@example.net", url="https://x.test/"),
    ]


async def test_rows_and_rollups_match_the_events(db: Database) -> None:
    result = await write_batch(db, campaign())
    assert (result.written, result.duplicates, result.messages) == (6, 0, 1)
    assert result.newest_at == AT + 60
    assert await count(db, "events") == 6
    assert await count(db, "messages", "subject = $1", "Spring sale") == 1
    row = await db.fetchrow("SELECT * FROM events WHERE kind = 'bounced'")
    assert row is not None
    assert (row["recipient"], row["recipient_domain"], row["code"], row["status"]) == (
        "bob@example.org",
        "example.org",
        550,
        "5.1.1",
    )
    assert (row["sender_domain"], row["campaign"], row["detail"]) == (
        "shop.example",
        "spring",
        "no such user",
    )
    where = "tenant = 'acme' AND campaign = 'spring' AND sender_domain = 'shop.example'"
    for column, expected in [
        ("accepted", 1),
        ("delivered", 1),
        ("bounced", 1),
        ("bounced_hard", 1),
        ("bounced_soft", 0),
        ("opened", 1),
        ("opened_machine", 1),
        ("clicked", 1),
    ]:
        assert await rollup(db, column, where) == expected, column
    reasons = "SELECT sum(count) FROM rollup_reasons WHERE reason = 'userunknown'"
    assert await db.fetchval(reasons) == 1
    domains = await db.fetch(
        "SELECT recipient_domain, delivered, bounced FROM rollup_domains ORDER BY 1"
    )
    assert [(d["recipient_domain"], d["delivered"], d["bounced"]) for d in domains] == [
        ("example.net", 1, 0),
        ("example.org", 0, 1),
    ]


async def test_the_same_batch_twice_changes_nothing(db: Database) -> None:
    batch = campaign()
    await write_batch(db, batch)
    before = await _snapshot(db)
    again = await write_batch(db, batch)
    assert (again.written, again.duplicates, again.messages) == (0, 6, 0)
    assert await _snapshot(db) == before
    # Twice in one batch (a producer's retry) counts once.
    twice = [batch[1], batch[1]]
    await write_batch(db, [*twice])
    assert await _snapshot(db) == before


async def test_an_async_bounce_is_attributed_through_its_message(db: Database) -> None:
    await write_batch(db, campaign()[:1])
    bounce = event(
        EventKind.BOUNCED,
        "m1",
        recipient="carol@example.com",
        classification="hard",
        reason="userunknown",
        stage="bouncer",
        at=AT + 3600,
    )
    complaint = event(EventKind.COMPLAINED, "m1", recipient="dan@example.com", at=AT + 3600)
    stranger = event(EventKind.BOUNCED, "unknown", classification="soft", at=AT + 3600)
    await write_batch(db, [bounce, complaint, stranger])
    hour = "hour = $1 AND tenant = 'acme' AND campaign = 'spring'"
    hour += " AND sender_domain = 'shop.example'"
    assert await rollup(db, "bounced_hard", hour, int(AT) + 3600) == 1
    assert await rollup(db, "complained", hour, int(AT) + 3600) == 1
    assert await rollup(db, "bounced_soft", "tenant = ''") == 1
    sql = "SELECT tenant, sender FROM events WHERE recipient = 'carol@example.com'"
    row = await db.fetchrow(sql)
    assert row == {"tenant": "acme", "sender": "news@shop.example"}


async def test_an_accepted_event_in_the_same_batch_attributes(db: Database) -> None:
    accepted, *_ = campaign()
    complaint = event(EventKind.COMPLAINED, "m1", recipient="dan@example.com")
    await write_batch(db, [complaint, accepted])
    assert await rollup(db, "complained", "tenant = 'acme' AND campaign = 'spring'") == 1


async def test_a_day_boundary_and_a_new_partition(db: Database) -> None:
    late = event(EventKind.DELIVERED, "m2", tenant="acme", at=AT + 14 * 3600 - 1)  # 23:59:59
    early = event(EventKind.DELIVERED, "m3", tenant="acme", at=AT + 14 * 3600)  # next day
    result = await write_batch(db, [late, early])
    assert result.written == 2
    days = await db.fetch("SELECT day, count(*) AS n FROM events GROUP BY day ORDER BY day")
    assert [(r["day"], r["n"]) for r in days] == [(20261207, 1), (20261208, 1)]


async def test_nul_characters_are_stored_without_them(db: Database) -> None:
    odd = event(EventKind.REJECTED, "m4", detail="bad\x00byte", tenant="acme")
    assert (await write_batch(db, [odd])).written == 1
    assert await db.fetchval("SELECT detail FROM events") == "badbyte"


async def test_an_event_time_out_of_range_is_poison(db: Database) -> None:
    with pytest.raises(PoisonRecord):
        await write_batch(db, [event(EventKind.DELIVERED, "m5", at=1e300)])
    assert await count(db, "events") == 0


async def _snapshot(db: Database) -> list[object]:
    out: list[object] = []
    for table in ("events", "messages", "rollup_hourly", "rollup_reasons", "rollup_domains"):
        out.append(await count(db, table))
    out.append(
        [dict(r) for r in await db.fetch("SELECT * FROM rollup_hourly ORDER BY hour, provider")]
    )
    out.append([dict(r) for r in await db.fetch("SELECT * FROM rollup_reasons ORDER BY kind")])
    return out
