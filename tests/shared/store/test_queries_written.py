"""The queries over rows the real writer made (``shared.store.writer.write_batch``): a
message's history after delivery, a search by recipient, a tenant report that matches the
events sent, on SQLite and PostgreSQL. ``test_queries.py`` covers each query's rules on rows
inserted directly; this checks the two halves agree on the columns."""

from __future__ import annotations

from shared.store.db import Database
from shared.store.queries import message_history
from shared.store.reports import tenant_report
from shared.store.search import SearchQuery, search_events
from shared.store.writer import write_batch
from shared.wire.records import EventKind, SmtpReply
from testing.store import event

DAY = 1796515200.0  # 2026-12-06T00:00:00Z
M1 = "c0ffee00" + "1" * 24
M2 = "c0ffee00" + "2" * 24


async def test_history_search_and_report_of_written_events(db: Database) -> None:
    sale = {"campaign": "spring-sale"}
    batch = [
        event(
            EventKind.ACCEPTED,
            M1,
            at=DAY + 10,
            tenant="shop",
            sender="News@Shop.example",
            subject="Spring sale",
            tags=sale,
            recipients=2,
        ),
        event(
            EventKind.DELIVERED,
            M1,
            at=DAY + 20,
            tenant="shop",
            sender="news@shop.example",
            recipient="Ann@Gmail.com",
            provider="google",
            tags=sale,
            reply=SmtpReply(code=250, enhanced="2.0.0", text="OK"),
        ),
        event(
            EventKind.BOUNCED,
            M1,
            at=DAY + 30,
            tenant="shop",
            sender="news@shop.example",
            recipient="bob@outlook.com",
            provider="microsoft",
            classification="hard",
            reason="userunknown",
            tags=sale,
            reply=SmtpReply(code=550, enhanced="5.1.1", text="no such user"),
        ),
        # An asynchronous complaint: no tenant or sender of its own, attributed by the writer.
        event(EventKind.COMPLAINED, M1, at=DAY + 40, recipient="ann@gmail.com"),
        event(EventKind.OPENED, M1, at=DAY + 50, recipient="ann@gmail.com", machine=True),
        event(EventKind.ACCEPTED, M2, at=DAY + 60, tenant="other", sender="hi@other.example"),
        event(
            EventKind.DELIVERED,
            M2,
            at=DAY + 70,
            tenant="other",
            recipient="ann@gmail.com",
            provider="google",
        ),
    ]
    await write_batch(db, batch)
    await write_batch(db, batch)  # a replay changes nothing

    history = await message_history(db, M1[:10], "shop")
    assert history is not None and history.message_id == M1
    assert [e.kind for e in history.events] == [
        "accepted",
        "delivered",
        "bounced",
        "complained",
        "opened",
    ]
    assert history.events[0].subject == "Spring sale"
    assert history.events[0].tags == sale
    assert history.events[1].recipient == "ann@gmail.com" and history.events[1].code == 250
    assert history.events[2].status == "5.1.1" and history.events[2].reason == "userunknown"
    assert history.events[4].machine is True
    assert {e.tenant for e in history.events} == {"shop"}  # the complaint too
    assert await message_history(db, M2, "shop") is None

    page = await search_events(db, SearchQuery(recipient="ANN@gmail.com"), "shop", now=DAY + 3600)
    assert [e.kind for e in page.events] == ["opened", "complained", "delivered"]
    admin = await search_events(
        db, SearchQuery(recipient="ann@gmail.com", status="delivered"), None, now=DAY + 3600
    )
    assert [e.message_id for e in admin.events] == [M2, M1]
    by_subject = await search_events(db, SearchQuery(subject="Spring"), "shop", now=DAY + 3600)
    assert [e.message_id for e in by_subject.events] == [M1]

    report = await tenant_report(db, "shop", since=DAY, until=DAY + 3600, now=DAY + 3600)
    t = report.totals
    assert (t.accepted, t.delivered, t.bounced, t.bounced_hard) == (1, 1, 1, 1)
    assert (t.complained, t.opened, t.opened_machine) == (1, 0, 1)
    assert t.deliverability == 0.5
    assert {p.provider: p.totals.deliverability for p in report.providers}["google"] == 1.0
    assert [(r.reason, r.count) for r in report.bounce_reasons] == [("userunknown", 1)]
    assert {d.domain for d in report.domains} == {"gmail.com", "outlook.com"}
    campaign = await tenant_report(
        db, "shop", campaign="spring-sale", since=DAY, until=DAY + 3600, now=DAY + 3600
    )
    assert campaign.totals.complained == 1  # attributed to the campaign through its message
