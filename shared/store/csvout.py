"""The store's query results as CSV (RFC 4180: CRLF line ends, quoted where needed).

A search is one row per event, under a header of :data:`EVENT_COLUMNS` (tags as a JSON
object in one cell). A report is "long" CSV, one number per row under
``section,name,metric,value`` (``totals,,delivered,1200``, ``provider,google,delivered,800``,
``bounce_reason,hard/userunknown,count,12``, ``domain,example.com,bounced,3``,
``hour,1796601600,accepted,40``), so every part of a report fits one fixed header and a
spreadsheet pivot table turns it into whatever table is wanted.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

from shared.store.queries import StoredEvent
from shared.store.reports import COUNTERS, Report, Totals

#: The header of a search's CSV, in column order.
EVENT_COLUMNS = (
    "at",
    "id",
    "kind",
    "tenant",
    "message_id",
    "recipient",
    "sender",
    "subject",
    "campaign",
    "tags",
    "provider",
    "mx",
    "classification",
    "reason",
    "code",
    "status",
    "detail",
    "machine",
    "agent",
    "url",
)

REPORT_COLUMNS = ("section", "name", "metric", "value")


def _text(rows: Iterable[Iterable[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(rows)
    return out.getvalue()


def events_csv(events: Iterable[StoredEvent], *, header: bool = True) -> str:
    """``events`` as CSV text; ``header=False`` for the pages after the first."""

    def rows() -> Iterator[list[object]]:
        if header:
            yield list(EVENT_COLUMNS)
        for event in events:
            yield [
                json.dumps(event.tags, sort_keys=True) if name == "tags" else getattr(event, name)
                for name in EVENT_COLUMNS
            ]

    return _text(rows())


def _numbers(section: str, name: str, totals: Totals) -> Iterator[list[object]]:
    for metric in COUNTERS:
        yield [section, name, metric, getattr(totals, metric)]
    if totals.deliverability is not None:
        yield [section, name, "deliverability", f"{totals.deliverability:.6f}"]


def report_csv(report: Report) -> str:
    """``report`` as long CSV (``section,name,metric,value``)."""

    def rows() -> Iterator[list[object]]:
        yield list(REPORT_COLUMNS)
        yield from _numbers("totals", "", report.totals)
        for provider in report.providers:
            yield from _numbers("provider", provider.provider, provider.totals)
        for reason in report.bounce_reasons:
            yield [
                "bounce_reason",
                f"{reason.classification}/{reason.reason}",
                "count",
                reason.count,
            ]
        for domain in report.domains:
            for metric in ("delivered", "deferred", "bounced"):
                yield ["domain", domain.domain, metric, getattr(domain, metric)]
        for hour in report.hours or ():
            yield from _numbers("hour", str(hour.hour), hour.totals)

    return _text(rows())
