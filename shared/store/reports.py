"""Per-tenant and per-campaign reports over a time range, read from the rollup tables.

The writer keeps three rollups per hour (``rollup_hourly``, ``rollup_reasons``,
``rollup_domains``), so a report sums a few rows per hour of the range instead of counting
events: its cost grows with hours x tenants x campaigns x providers, not with the mail
sent. Hours are whole: a range that starts or ends inside an hour counts that whole hour
(the report says which hours it covered in ``since``/``until``).

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

HOUR = 3600
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


def _scope(tenant: str | None, campaign: str | None, first: int) -> tuple[str, list[Any]]:
    where, args = "", []
    if tenant is not None:
        args.append(tenant)
        where += f" AND tenant = ${first + len(args) - 1}"
    if campaign is not None:
        args.append(campaign)
        where += f" AND campaign = ${first + len(args) - 1}"
    return where, args


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
    counts of each hour. Raises ``StoreInvalid`` for a bad range."""
    span = time_range(since, until, now)
    first = math.floor(span.since / HOUR) * HOUR
    last = math.ceil(span.until / HOUR) * HOUR
    scope, args = _scope(tenant, campaign, 3)
    sums = ", ".join(f"SUM({c}) AS {c}" for c in COUNTERS)
    # One pass over the hourly rollup (by provider, and by hour for a series: a few thousand
    # rows for a month) gives the totals, the providers and the series; the three statements
    # run at once on PostgreSQL's pool (SQLite's one connection takes them in turn).
    keys = "hour, provider" if series else "provider"
    hourly, reasons, domains = await asyncio.gather(
        db.fetch(
            f"SELECT {keys}, {sums} FROM rollup_hourly WHERE hour >= $1 AND hour < $2"
            f"{scope} GROUP BY {keys}",
            first,
            last,
            *args,
        ),
        db.fetch(
            "SELECT classification, reason, SUM(count) AS n FROM rollup_reasons"
            f" WHERE hour >= $1 AND hour < $2{scope} AND kind = 'bounced'"
            f" GROUP BY classification, reason ORDER BY n DESC, reason LIMIT {TOP}",
            first,
            last,
            *args,
        ),
        db.fetch(
            "SELECT recipient_domain, SUM(delivered) AS d, SUM(deferred) AS f,"
            f" SUM(bounced) AS b FROM rollup_domains WHERE hour >= $1 AND hour < $2{scope}"
            " GROUP BY recipient_domain"
            " ORDER BY SUM(delivered) + SUM(deferred) + SUM(bounced) DESC, recipient_domain"
            f" LIMIT {TOP}",
            first,
            last,
            *args,
        ),
    )
    by_provider: dict[str, dict[str, int]] = {}
    by_hour: dict[int, dict[str, int]] = {}
    overall: dict[str, int] = dict.fromkeys(COUNTERS, 0)
    for row in hourly:
        for into in (
            by_provider.setdefault(row["provider"], dict.fromkeys(COUNTERS, 0)),
            by_hour.setdefault(int(row.get("hour", 0)), dict.fromkeys(COUNTERS, 0)),
            overall,
        ):
            for name in COUNTERS:
                into[name] += int(row[name] or 0)
    hours = None
    if series:
        hours = [HourTotals(hour=h, totals=_totals(by_hour[h])) for h in sorted(by_hour)]
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
