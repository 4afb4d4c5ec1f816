"""Per-tenant and per-campaign reports over a time range, read from the rollup tables.

The writer keeps the counters per hour (``rollup_hourly``) and per UTC day
(``rollup_daily``), and the bounce reasons and recipient domains per day
(``rollup_reasons``, ``rollup_domains`` and, summed over the campaigns for a whole
tenant's report, ``rollup_tenant_domains``), so a report sums rollup rows instead of counting
events: its cost grows with days x tenants x campaigns x providers, not with the mail sent.

Hours are whole: a range that starts or ends inside an hour counts that whole hour (the
report says which hours it covered in ``since``/``until``). The totals and the providers sum
the whole days inside those hours from ``rollup_daily`` and the hours of the partial first
and last day from ``rollup_hourly``: exactly the sums of the hours. The series (on request)
is ``rollup_hourly``'s. Bounce reasons and domains have a day's granularity: they count every
UTC day the range touches, whole (a range of 14:00 to 16:00 lists that day's reasons).

Deliverability is ``delivered / (delivered + bounced)`` (deferrals are not outcomes yet;
expired mail is not a bounce from the recipient's provider), ``None`` when nothing was
delivered or bounced.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import msgspec

from shared.store.db import Executor
from shared.store.queries import time_range
from shared.store.rows import day_of

HOUR = 3600
DAY = 86400
#: How many bounce reasons and recipient domains a report lists.
TOP = 10

#: The counters of ``rollup_hourly``, in report order.
COUNTERS = (
    "accepted",
    "delivered",
    "deferred",
    "bounced",
    "bounced_hard",
    "bounced_soft",
    "expired",
    "complained",
    "unsubscribed",
    "opened",
    "opened_machine",
    "clicked",
    "clicked_machine",
    "suppressed",
    "rejected",
)


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    """Counts of one scope (the whole report, a provider or an hour)."""

    accepted: int = 0
    delivered: int = 0
    deferred: int = 0
    bounced: int = 0
    bounced_hard: int = 0
    bounced_soft: int = 0
    expired: int = 0
    complained: int = 0
    unsubscribed: int = 0
    opened: int = 0  # opens by people (machine opens apart)
    opened_machine: int = 0
    clicked: int = 0
    clicked_machine: int = 0
    suppressed: int = 0
    rejected: int = 0
    deliverability: float | None = None  # delivered / (delivered + bounced)


class ProviderTotals(msgspec.Struct, frozen=True, kw_only=True):
    """The counts of one mailbox provider (google, microsoft, ..., other)."""

    provider: str
    totals: Totals


class HourTotals(msgspec.Struct, frozen=True, kw_only=True):
    """The counts of one hour (``hour``: its first second, epoch)."""

    hour: int
    totals: Totals


class ReasonCount(msgspec.Struct, frozen=True, kw_only=True):
    """A bounce reason (docs/bounce-reasons.md) of one class and how often it came."""

    classification: str
    reason: str
    count: int


class DomainCount(msgspec.Struct, frozen=True, kw_only=True):
    """A recipient domain's outcomes."""

    domain: str
    delivered: int
    deferred: int
    bounced: int


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's (or, for the admin, everyone's) sending over ``[since, until)``."""

    tenant: str | None  # None: every tenant
    campaign: str | None  # None: every campaign
    since: float  # the first hour counted
    until: float  # the end of the last hour counted
    totals: Totals
    providers: list[ProviderTotals]
    bounce_reasons: list[ReasonCount]
    domains: list[DomainCount]
    hours: list[HourTotals] | None = None  # with series=True


def _totals(row: dict[str, Any]) -> Totals:
    counts = {name: int(row.get(name) or 0) for name in COUNTERS}
    settled = counts["delivered"] + counts["bounced"]
    rate = counts["delivered"] / settled if settled else None
    return Totals(**counts, deliverability=rate)


async def _nothing() -> list[dict[str, Any]]:
    return []


async def _series(
    db: Executor, first: int, last: int, tenant: str | None, campaign: str | None
) -> list[dict[str, Any]]:
    """The sums of each hour of ``[first, last)`` that has rows, oldest first."""
    args = _scope(tenant, campaign, 1)[1]
    return await db.fetch(
        f"SELECT hour, {_sums()} FROM rollup_hourly WHERE hour >= $1 AND hour < $2"
        f"{_where(tenant, campaign, 3)} GROUP BY hour ORDER BY hour",
        first,
        last,
        *args,
    )


def _scope(tenant: str | None, campaign: str | None, first: int) -> tuple[str, list[Any]]:
    where, args = "", []
    if tenant is not None:
        args.append(tenant)
        where += f" AND tenant = ${first + len(args) - 1}"
    if campaign is not None:
        args.append(campaign)
        where += f" AND campaign = ${first + len(args) - 1}"
    return where, args


def _sums() -> str:
    return ", ".join(f"SUM({c}) AS {c}" for c in COUNTERS)


def whole_days(first: int, last: int) -> tuple[int, int] | None:
    """The UTC days lying wholly inside ``[first, last)`` as ``[day_start, day_end)`` epoch
    seconds, or ``None`` when there is no whole day in it."""
    start = math.ceil(first / DAY) * DAY
    end = math.floor(last / DAY) * DAY
    return (start, end) if start < end else None


async def _counts(
    db: Executor, first: int, last: int, tenant: str | None, campaign: str | None
) -> list[dict[str, Any]]:
    """Per-provider sums over the whole hours ``[first, last)``: the whole days from
    ``rollup_daily``, the hours before the first and after the last whole day from
    ``rollup_hourly`` (rows of the two to add up, several per provider)."""
    args = _scope(tenant, campaign, 1)[1]
    days = whole_days(first, last)
    if days is None:
        return await db.fetch(
            f"SELECT provider, {_sums()} FROM rollup_hourly WHERE hour >= $1 AND hour < $2"
            f"{_where(tenant, campaign, 3)} GROUP BY provider",
            first,
            last,
            *args,
        )
    start, end = days
    statements = [
        db.fetch(
            f"SELECT provider, {_sums()} FROM rollup_daily WHERE day >= $1 AND day < $2"
            f"{_where(tenant, campaign, 3)} GROUP BY provider",
            day_of(start),
            day_of(end),
            *args,
        )
    ]
    if first < start or end < last:
        # The ranges are empty when the edge is a day's start: the index sees two ranges.
        statements.append(
            db.fetch(
                f"SELECT provider, {_sums()} FROM rollup_hourly"
                " WHERE ((hour >= $1 AND hour < $2) OR (hour >= $3 AND hour < $4))"
                f"{_where(tenant, campaign, 5)} GROUP BY provider",
                first,
                start,
                end,
                last,
                *args,
            )
        )
    return [row for rows in await asyncio.gather(*statements) for row in rows]


def _where(tenant: str | None, campaign: str | None, first: int) -> str:
    """The scope's conditions, its placeholders numbered from ``first``."""
    return _scope(tenant, campaign, first)[0]


async def tenant_report(
    db: Executor,
    tenant: str | None,
    *,
    campaign: str | None = None,
    since: float | None = None,
    until: float | None = None,
    now: float,
    series: bool = False,
) -> Report:
    """The report of ``tenant`` (``None``: all), of one ``campaign`` or all, over the whole
    hours of ``[since, until)`` (default: the last day before ``now``); ``series`` adds the
    counts of each hour. Bounce reasons and domains count the whole UTC days the range
    touches (see the module docstring). Raises ``StoreInvalid`` for a bad range."""
    span = time_range(since, until, now)
    first = math.floor(span.since / HOUR) * HOUR
    last = math.ceil(span.until / HOUR) * HOUR
    args = _scope(tenant, campaign, 1)[1]
    first_day, last_day = day_of(first), day_of(last - 1)
    # A whole tenant's domains come summed over its campaigns: a twentieth of the rows.
    domains_table = "rollup_domains" if campaign is not None else "rollup_tenant_domains"
    # The statements run at once on PostgreSQL's pool (SQLite's one connection takes them
    # in turn).
    counted, reasons, domains, hourly = await asyncio.gather(
        _counts(db, first, last, tenant, campaign),
        db.fetch(
            "SELECT classification, reason, SUM(count) AS n FROM rollup_reasons"
            f" WHERE day >= $1 AND day <= $2{_where(tenant, campaign, 3)} AND kind = 'bounced'"
            f" GROUP BY classification, reason ORDER BY n DESC, reason LIMIT {TOP}",
            first_day,
            last_day,
            *args,
        ),
        db.fetch(
            "SELECT recipient_domain, SUM(delivered) AS d, SUM(deferred) AS f,"
            f" SUM(bounced) AS b FROM {domains_table}"
            f" WHERE day >= $1 AND day <= $2{_where(tenant, campaign, 3)}"
            " GROUP BY recipient_domain"
            " ORDER BY SUM(delivered) + SUM(deferred) + SUM(bounced) DESC, recipient_domain"
            f" LIMIT {TOP}",
            first_day,
            last_day,
            *args,
        ),
        _series(db, first, last, tenant, campaign) if series else _nothing(),
    )
    by_provider: dict[str, dict[str, int]] = {}
    overall: dict[str, int] = dict.fromkeys(COUNTERS, 0)
    for row in counted:
        for into in (by_provider.setdefault(row["provider"], dict.fromkeys(COUNTERS, 0)), overall):
            for name in COUNTERS:
                into[name] += int(row[name] or 0)
    hours = None
    if series:
        hours = [HourTotals(hour=int(r["hour"]), totals=_totals(r)) for r in hourly]
    return Report(
        tenant=tenant,
        campaign=campaign,
        since=float(first),
        until=float(last),
        totals=_totals(overall),
        providers=[
            ProviderTotals(provider=name, totals=_totals(by_provider[name]))
            for name in sorted(by_provider)
        ],
        bounce_reasons=[
            ReasonCount(classification=r["classification"], reason=r["reason"], count=int(r["n"]))
            for r in reasons
        ],
        domains=[
            DomainCount(
                domain=r["recipient_domain"],
                delivered=int(r["d"]),
                deferred=int(r["f"]),
                bounced=int(r["b"]),
            )
            for r in domains
        ],
        hours=hours,
    )
