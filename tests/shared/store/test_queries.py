"""The store's queries on SQLite and PostgreSQL: history, search with pagination, reports, CSV."""

from __future__ import annotations

import csv
import io

import pytest

from shared.errors import StoreInvalid
from shared.store.csvout import EVENT_COLUMNS, events_csv, report_csv
from shared.store.db import Database
from shared.store.queries import message_history, prefix_bounds
from shared.store.reports import tenant_report
from shared.store.search import SearchQuery, search_events
from testing.storedata import (
    DAY,
    MSG_A,
    MSG_A2,
    MSG_B,
    NOW,
    H,
    bulk_events,
    other_events,
    shop_events,
)
from testing.storerows import event_row, insert_events, rebuild_rollups


@pytest.fixture
async def filled(query_store: Database) -> Database:
    await insert_events(query_store, shop_events() + other_events())
    await rebuild_rollups(query_store)
    return query_store


async def test_history_in_time_order_by_id_and_prefix(filled: Database) -> None:
    history = await message_history(filled, MSG_A, "shop")
    assert history is not None
    kinds = [e.kind for e in history.events]
    assert kinds == [
        "accepted",
        "delivered",
        "deferred",
        "bounced",
        "opened",
        "opened",
        "clicked",
        "complained",
    ]
    assert [e.at for e in history.events] == sorted(e.at for e in history.events)
    assert history.events[1].recipient == "ann@gmail.com"  # lower-cased
    assert history.events[0].tags == {"campaign": "spring-sale", "list": "vip"}
    by_prefix = await message_history(filled, MSG_A[:9].upper(), None)
    assert by_prefix is not None and by_prefix.message_id == MSG_A


async def test_ambiguous_short_and_unknown_prefixes(filled: Database) -> None:
    with pytest.raises(StoreInvalid, match=f"{MSG_A}.*{MSG_A2}"):
        await message_history(filled, "A1B2C3D4", None)
    with pytest.raises(StoreInvalid, match="at least 8"):
        await message_history(filled, "a1b2c3d", None)
    with pytest.raises(StoreInvalid, match="hex"):
        await message_history(filled, "not-an-id", None)
    assert await message_history(filled, "ffffffff", None) is None


async def test_a_tenant_never_sees_another_tenants_message(filled: Database) -> None:
    assert await message_history(filled, MSG_B, "shop") is None
    assert await message_history(filled, MSG_B[:8], "shop") is None
    other = await message_history(filled, MSG_B, "other")
    assert other is not None and {e.tenant for e in other.events} == {"other"}


async def search(db: Database, tenant: str | None, **fields: object) -> list[tuple[str, str]]:
    page = await search_events(db, SearchQuery(**fields), tenant, now=NOW)  # type: ignore[arg-type]
    return [(e.kind, e.message_id) for e in page.events]


async def test_search_filters(filled: Database) -> None:
    # recipient: whole address, any case, newest first, only the tenant's
    assert await search(filled, "shop", recipient="ANN@gmail.com", status="delivered") == [
        ("delivered", MSG_A2),
        ("delivered", MSG_A),
    ]
    assert await search(filled, None, recipient="ann@gmail.com", status="delivered") == [
        ("delivered", MSG_A2),
        ("delivered", MSG_B),
        ("delivered", MSG_A),
    ]
    assert [k for k, _ in await search(filled, "shop", sender="billing@shop.example")] == [
        "bounced",
        "delivered",
        "accepted",
    ]
    assert {m for _, m in await search(filled, None, subject="Spring")} == {MSG_A, MSG_B}
    assert {m for _, m in await search(filled, "shop", subject="Spring s")} == {MSG_A}
    assert await search(filled, "shop", subject="spring") == []  # case-sensitive prefix
    assert {m for _, m in await search(filled, "shop", tag="spring-sale")} == {MSG_A}
    assert {m for _, m in await search(filled, "shop", tag="kind=invoice")} == {MSG_A2}
    assert {m for _, m in await search(filled, "shop", tag="list=vip")} == {MSG_A}
    assert await search(filled, "shop", status="bounced") == [
        ("bounced", MSG_A2),
        ("bounced", MSG_A),
    ]
    # time range: [since, until)
    assert await search(filled, "shop", since=DAY + 2 * H, until=DAY + 3 * H) == [
        ("bounced", MSG_A)
    ]
    assert await search(filled, "shop", until=DAY + H) == []  # until is exclusive


async def test_search_default_range_is_the_last_day(filled: Database) -> None:
    page = await search_events(filled, SearchQuery(), "shop", now=DAY + 29.5 * H)
    assert page.since == DAY + 5.5 * H
    assert [e.at for e in page.events] == [DAY + 6 * H]  # the only one after 05:30


async def test_bad_search_input(filled: Database) -> None:
    for query in (
        SearchQuery(status="sent"),
        SearchQuery(cursor="garbage!"),
        SearchQuery(since=NOW, until=NOW - 1),
        SearchQuery(tag="=x"),
    ):
        with pytest.raises(StoreInvalid):
            await search_events(filled, query, "shop", now=NOW)


async def test_pagination_walks_every_event_once(filled: Database) -> None:
    await insert_events(filled, bulk_events(23))
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        query = SearchQuery(sender="bulk@shop.example", limit=5, cursor=cursor)
        page = await search_events(filled, query, "shop", now=NOW)
        seen.extend(e.id for e in page.events)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 5 and len(seen) == 23 and len(set(seen)) == 23
    admin = await search_events(filled, SearchQuery(status="delivered", limit=30), None, now=NOW)
    assert len(admin.events) == 26 and admin.next_cursor is None  # 23 + 2 shop + 1 other


async def test_same_second_events_are_paged_by_id(filled: Database) -> None:
    rows = bulk_events(6)
    for row in rows:
        row["at"] = DAY + 12 * H  # all at once: the id breaks the tie
    await insert_events(filled, rows)
    first = await search_events(
        filled, SearchQuery(sender="bulk@shop.example", limit=4), "shop", now=NOW
    )
    assert first.next_cursor is not None
    rest = await search_events(
        filled,
        SearchQuery(sender="bulk@shop.example", limit=4, cursor=first.next_cursor),
        "shop",
        now=NOW,
    )
    ids = [e.id for e in first.events + rest.events]
    assert len(ids) == 6 and len(set(ids)) == 6 and ids == sorted(ids, reverse=True)


async def test_tenant_report_matches_the_events(filled: Database) -> None:
    report = await tenant_report(filled, "shop", since=DAY, until=NOW, now=NOW)
    t = report.totals
    assert (t.accepted, t.delivered, t.deferred, t.bounced) == (2, 2, 1, 2)
    assert (t.bounced_hard, t.bounced_soft, t.complained) == (1, 1, 1)
    assert (t.opened, t.opened_machine, t.clicked, t.clicked_machine) == (1, 1, 1, 0)
    assert t.deliverability == 0.5
    providers = {p.provider: p.totals for p in report.providers}
    assert providers["google"].deliverability == 1.0
    assert providers["microsoft"].deliverability == 0.0
    assert providers["yahoo"].bounced_soft == 1
    assert [(r.classification, r.reason, r.count) for r in report.bounce_reasons] == [
        ("soft", "mailboxfull", 1),
        ("hard", "userunknown", 1),
    ]
    assert [(d.domain, d.delivered, d.bounced) for d in report.domains][:1] == [("gmail.com", 2, 0)]
    campaign = await tenant_report(
        filled, "shop", campaign="spring-sale", since=DAY, until=NOW, now=NOW, series=True
    )
    assert (campaign.totals.accepted, campaign.totals.bounced) == (1, 1)
    assert campaign.hours is not None
    assert [h.hour for h in campaign.hours] == [int(DAY + n * H) for n in (1, 2, 3, 4)]
    everyone = await tenant_report(filled, None, since=DAY, until=NOW, now=NOW)
    assert everyone.totals.delivered == 3
    empty = await tenant_report(filled, "nobody", since=DAY, until=NOW, now=NOW)
    assert empty.totals.accepted == 0 and empty.totals.deliverability is None


async def test_csv_parses_back(filled: Database) -> None:
    page = await search_events(filled, SearchQuery(recipient="ann@gmail.com"), "shop", now=NOW)
    rows = list(csv.DictReader(io.StringIO(events_csv(page.events))))
    assert len(rows) == len(page.events) and tuple(rows[0]) == EVENT_COLUMNS
    assert rows[-1]["kind"] == "delivered" and rows[-1]["subject"] == "Spring sale: 20% off"
    report = await tenant_report(filled, "shop", since=DAY, until=NOW, now=NOW)
    values = {
        (r["section"], r["name"], r["metric"]): r["value"]
        for r in csv.DictReader(io.StringIO(report_csv(report)))
    }
    assert values[("totals", "", "delivered")] == "2"
    assert values[("provider", "google", "deliverability")] == "1.000000"
    assert values[("bounce_reason", "hard/userunknown", "count")] == "1"
    assert values[("domain", "gmail.com", "delivered")] == "2"


def test_prefix_bounds_stay_alphanumeric() -> None:
    # A linguistic collation skips ":" (9's code-point successor) at its first level.
    assert prefix_bounds("a1b2c3d9") == ("a1b2c3d9", "a1b2c3da")
    assert prefix_bounds("a1b2c3df") == ("a1b2c3df", "a1b2c3dg")
    assert prefix_bounds("a1b2c3d0") == ("a1b2c3d0", "a1b2c3d1")


async def test_a_prefix_ending_in_9(query_store: Database) -> None:
    nines = "99999999" + "9" * 24
    after = "9999999a" + "0" * 24
    await insert_events(
        query_store,
        [
            event_row(at=DAY, kind="accepted", message_id=nines),
            event_row(at=DAY, kind="accepted", message_id=after),
        ],
    )
    found = await message_history(query_store, "99999999", None)
    assert found is not None and found.message_id == nines
