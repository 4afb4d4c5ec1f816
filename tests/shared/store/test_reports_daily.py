"""Reports read whole days from ``rollup_daily`` and the edges from ``rollup_hourly``: the
same figures as summing the hours, on events written by the writer (both dialects)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.store.counters import HOURLY_COUNTERS
from shared.store.db import Database
from shared.store.reports import COUNTERS, Totals, tenant_report, whole_days
from shared.store.rows import day_of
from shared.store.writer import write_batch
from shared.wire.records import Event, EventKind
from testing.store import AT, event

H = 3600
#: The start of AT's UTC day (2026-12-07T00:00:00Z).
D = int(AT) // 86400 * 86400
FIRST = D - 2 * 86400
LAST = D + 2 * 86400

_REASONS = [("hard", "userunknown"), ("soft", "mailboxfull"), ("hard", "nosuchdomain")]
_KINDS = [
    EventKind.ACCEPTED,
    EventKind.DELIVERED,
    EventKind.DELIVERED,
    EventKind.BOUNCED,
    EventKind.DEFERRED,
    EventKind.OPENED,
    EventKind.CLICKED,
    EventKind.COMPLAINED,
]


def four_days() -> list[tuple[bytes, Event]]:
    """Events every 1237 s over four days, two tenants, two campaigns, two providers."""
    out = []
    for n, at in enumerate(range(FIRST, LAST, 1237)):
        kind = _KINDS[n % len(_KINDS)]
        domain = f"d{n % 4}.example"
        fields: dict[str, Any] = {
            "at": float(at),
            "tenant": f"t{n % 2}",
            "sender": f"news@t{n % 2}.example",
            "tags": {"campaign": f"c{n % 3 % 2}"},
            "recipient": f"r{n}@{domain}",
            "domain": domain,
            "provider": "google" if n % 5 < 3 else "other",
            "machine": n % 3 == 0,
        }
        if kind is EventKind.BOUNCED:
            fields["classification"], fields["reason"] = _REASONS[n % 3]
        out.append(event(kind, f"{n:032x}", **fields))
    return out


@pytest.fixture
async def written(db: Database) -> Database:
    events = four_days()
    for start in range(0, len(events), 100):
        await write_batch(db, events[start : start + 100])
    await write_batch(db, events[50:350])  # a replay adds nothing, daily or hourly
    return db


def _scope(tenant: str | None, campaign: str | None) -> tuple[str, list[Any]]:
    where, args = "", []
    for column, value in (("tenant", tenant), ("campaign", campaign)):
        if value is not None:
            args.append(value)
            where += f" AND {column} = ${len(args) + 2}"
    return where, args


async def hourly_sums(
    db: Database, first: int, last: int, tenant: str | None, campaign: str | None
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """The totals and providers of ``[first, last)`` summed from ``rollup_hourly`` alone
    (the computation the reports did before the daily rollup)."""
    where, args = _scope(tenant, campaign)
    sums = ", ".join(f"SUM({c}) AS {c}" for c in COUNTERS)
    rows = await db.fetch(
        f"SELECT provider, {sums} FROM rollup_hourly WHERE hour >= $1 AND hour < $2{where}"
        " GROUP BY provider",
        first,
        last,
        *args,
    )
    providers = {r["provider"]: {c: int(r[c]) for c in COUNTERS} for r in rows}
    overall = {c: sum(p[c] for p in providers.values()) for c in COUNTERS}
    return overall, providers


def counts(totals: Totals) -> dict[str, int]:
    return {c: getattr(totals, c) for c in COUNTERS}


RANGES = [
    (FIRST, LAST),  # whole days only
    (D, D + 86400),  # one whole day
    (D - 86400 + 5 * H, D + 86400 + 7 * H),  # partial, whole, partial
    (D - 86400 + 20 * H, D + 86400),  # partial first day, then one whole
    (D, D + 86400 + 3 * H),  # one whole, then a partial last day
    (D + 3 * H, D + 9 * H),  # inside one day
    (D + 22 * H, D + 26 * H),  # across midnight, no whole day
    (D + 3 * H + 1800, D + 86400 + 30 * 60),  # inside hours: counted whole
]


@pytest.mark.parametrize(("since", "until"), RANGES)
@pytest.mark.parametrize(("tenant", "campaign"), [(None, None), ("t0", None), ("t1", "c1")])
async def test_report_counts_equal_the_hours(
    written: Database, since: int, until: int, tenant: str | None, campaign: str | None
) -> None:
    report = await tenant_report(
        written, tenant, campaign=campaign, since=since, until=until, now=LAST, series=True
    )
    first, last = int(report.since), int(report.until)
    assert (first, last) == (since // H * H, -(-until // H) * H)
    overall, providers = await hourly_sums(written, first, last, tenant, campaign)
    assert sum(overall.values()) > 0
    assert counts(report.totals) == overall
    assert {p.provider: counts(p.totals) for p in report.providers} == providers
    assert report.hours is not None
    assert [h.hour for h in report.hours] == sorted({h.hour for h in report.hours})
    assert first <= report.hours[0].hour and report.hours[-1].hour < last
    summed = {c: sum(getattr(h.totals, c) for h in report.hours) for c in COUNTERS}
    assert summed == overall


@pytest.mark.parametrize(("since", "until"), RANGES)
@pytest.mark.parametrize("campaign", [None, "c1"])
async def test_reasons_and_domains_count_the_days_touched(
    written: Database, since: int, until: int, campaign: str | None
) -> None:
    report = await tenant_report(
        written, "t1", campaign=campaign, since=since, until=until, now=LAST
    )
    scope = "" if campaign is None else f" AND campaign = '{campaign}'"
    first_day, last_day = day_of(report.since), day_of(report.until - 1)
    reasons = await written.fetch(
        "SELECT classification, reason, count(*) AS n FROM events WHERE kind = 'bounced'"
        f" AND tenant = 't1'{scope} AND day >= $1 AND day <= $2 GROUP BY classification, reason",
        first_day,
        last_day,
    )
    expected = {(r["classification"], r["reason"]): int(r["n"]) for r in reasons}
    assert expected
    assert {(r.classification, r.reason): r.count for r in report.bounce_reasons} == expected
    domains = await written.fetch(
        "SELECT recipient_domain AS d, kind, count(*) AS n FROM events"
        f" WHERE kind IN ('delivered', 'deferred', 'bounced') AND tenant = 't1'{scope}"
        " AND day >= $1 AND day <= $2 GROUP BY recipient_domain, kind",
        first_day,
        last_day,
    )
    found: dict[str, dict[str, int]] = {}
    for r in domains:
        found.setdefault(r["d"], {"delivered": 0, "deferred": 0, "bounced": 0})[r["kind"]] = int(
            r["n"]
        )
    assert {
        d.domain: {"delivered": d.delivered, "deferred": d.deferred, "bounced": d.bounced}
        for d in report.domains
    } == found


async def test_daily_rollup_is_the_hours_summed_per_day(written: Database) -> None:
    sums = ", ".join(f"SUM({c}) AS {c}" for c in HOURLY_COUNTERS)
    key = "day, tenant, sender_domain, campaign, provider"
    hourly = await written.fetch(f"SELECT {key}, {sums} FROM rollup_hourly GROUP BY {key}")
    daily = await written.fetch(
        f"SELECT {key}, day_start, {sums} FROM rollup_daily GROUP BY {key}, day_start"
    )
    assert len(daily) == len(hourly) > 8
    for row in daily:
        del row["day_start"]
    assert sorted(map(_plain, daily), key=repr) == sorted(map(_plain, hourly), key=repr)


async def test_tenant_domains_are_the_campaigns_summed(written: Database) -> None:
    key = "day, day_start, tenant, recipient_domain"
    sums = "SUM(delivered) AS a, SUM(deferred) AS b, SUM(bounced) AS c"
    per_campaign = await written.fetch(f"SELECT {key}, {sums} FROM rollup_domains GROUP BY {key}")
    tenant_wide = await written.fetch(
        f"SELECT {key}, {sums} FROM rollup_tenant_domains GROUP BY {key}"
    )
    assert len(tenant_wide) > 8
    assert sorted(map(_plain, tenant_wide), key=repr) == sorted(map(_plain, per_campaign), key=repr)


async def test_day_start_is_the_days_first_second(written: Database) -> None:
    for table in ("rollup_daily", "rollup_reasons", "rollup_domains", "rollup_tenant_domains"):
        rows = await written.fetch(f"SELECT DISTINCT day, day_start FROM {table}")
        assert len(rows) == 4
        assert all(int(r["day_start"]) == _start(int(r["day"])) for r in rows)


def _start(day: int) -> int:
    return int(datetime(day // 10000, day // 100 % 100, day % 100, tzinfo=UTC).timestamp())


def _plain(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(int(v) if isinstance(v, int) else v for _, v in sorted(row.items()))


def test_whole_days() -> None:
    assert whole_days(D, D + 86400) == (D, D + 86400)
    assert whole_days(D + H, D + 2 * 86400 - H) is None
    assert whole_days(D + H, D + 3 * 86400 - H) == (D + 86400, D + 2 * 86400)
    assert whole_days(D + H, D + 86400 + H) is None
    assert whole_days(D - H, D + 86400 + H) == (D, D + 86400)
