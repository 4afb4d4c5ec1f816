"""``postline message show|search`` and ``postline report``: the reporting store's queries.

With a store (``shared.store.location.store_url``: ``[store]`` names a database, or the
embedded bus's SQLite file exists), ``message show`` and ``message search`` ask it: indexed,
milliseconds. Without one they read ``postline.events`` from the beginning as they always
did (seconds to hours, depending on the retention), and ``message show`` prints what it
printed before. ``report`` needs the store (the rollups are its).

The operator's CLI is the admin: it sees every tenant, or one with ``--tenant``. Nothing
here imports a database driver before a command runs (the parser is built for every
``postline`` command).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from shared import eventlog
from shared.config import Config
from shared.errors import StoreError, StoreInvalid, StoreUnavailable
from shared.store.location import store_url
from shared.wire.records import Event

EXIT_NOT_FOUND = 1
EXIT_NO_STORE = 2


def add_search_command(messages: argparse._SubParsersAction[Any]) -> None:
    """Register ``message search`` under ``message``."""
    search = messages.add_parser(
        "search", help="events by recipient, sender, subject, tag, status and time"
    )
    search.add_argument("--recipient", default="", help="the whole address (any case)")
    search.add_argument("--sender", default="", help="the envelope sender (any case)")
    search.add_argument("--subject", default="", help="a prefix of the subject (messages)")
    search.add_argument("--tag", default="", help="a campaign name, or key=value")
    search.add_argument("--status", default="", metavar="KIND", help="events of this kind")
    search.add_argument("--tenant", default=None, help="only this tenant's (default: all)")
    _range_arguments(search)
    search.add_argument("--limit", type=int, default=50, help="events per page (1-1000)")
    search.add_argument("--cursor", default="", help="the page after this one (store only)")
    output = search.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="the page as one JSON object")
    output.add_argument("--csv", action="store_true", help="CSV, with a header line")
    search.set_defaults(handler=cmd_search)


def add_report_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``report``."""
    report = commands.add_parser(
        "report", help="a tenant's or campaign's sending over a time range (the store)"
    )
    report.add_argument("--tenant", default=None, help="the tenant (default: all)")
    report.add_argument("--campaign", default=None, help="only this campaign")
    _range_arguments(report)
    report.add_argument("--hourly", action="store_true", help="add the counts of each hour")
    output = report.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="the report as JSON")
    output.add_argument("--csv", action="store_true", help="section,name,metric,value CSV")
    report.set_defaults(handler=cmd_report)


def _range_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", default="", help="epoch seconds or ISO 8601 (default: a day ago)"
    )
    parser.add_argument("--until", default="", help="epoch seconds or ISO 8601 (default: now)")


def parse_time(value: str, name: str) -> float | None:
    """Epoch seconds or ISO 8601 (UTC without an offset); ``StoreInvalid`` otherwise."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise StoreInvalid(f"{name} is neither epoch seconds nor ISO 8601: {value!r}") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _fail(message: str, code: int) -> int:
    print(f"postline: {message}", file=sys.stderr)
    return code


def _store_errors(
    command: Callable[[argparse.Namespace, Config], Awaitable[int]],
) -> Callable[[argparse.Namespace, Config], Awaitable[int]]:
    """``command`` with the store's errors as the CLI's exit codes: a malformed query 1, a
    database that is down (or refuses) 2."""

    @functools.wraps(command)
    async def guarded(args: argparse.Namespace, config: Config) -> int:
        try:
            return await command(args, config)
        except StoreInvalid as exc:
            return _fail(str(exc), EXIT_NOT_FOUND)
        except StoreUnavailable as exc:
            return _fail(f"store unavailable: {exc}", EXIT_NO_STORE)
        except StoreError as exc:
            return _fail(f"store error: {exc}", EXIT_NO_STORE)

    return guarded


def format_stored(event: Any) -> str:
    """One line per stored event, in ``postline events tail``'s layout."""
    parts = [
        eventlog.format_time(event.at),
        f"{event.kind:<12}",
        event.message_id or "-",
        event.recipient or "-",
    ]
    if event.sender and not event.recipient:
        parts.append(f"from={event.sender}")
    if event.code:
        parts.append(f'reply="{" ".join(f"{event.code} {event.status} {event.detail}".split())}"')
    for name in ("provider", "mx", "classification", "reason", "subject", "url", "tenant"):
        value = getattr(event, name)
        if value:
            parts.append(f"{name}={json.dumps(value) if ' ' in value else value}")
    if event.machine:
        parts.append("machine=yes")
    if event.tags:
        parts.append("tags=" + ",".join(f"{k}={v}" for k, v in sorted(event.tags.items())))
    return " ".join(parts)


@_store_errors
async def show_from_store(args: argparse.Namespace, config: Config) -> int:
    """``message show`` answered by the store (``store_url`` says there is one)."""
    from shared.store.db import open_database  # noqa: PLC0415 (asyncpg, only when used)
    from shared.store.queries import message_history  # noqa: PLC0415

    url = store_url(config, existing_only=True)
    assert url is not None
    db = await open_database(url)
    try:
        found = await message_history(db, args.id, None)
    finally:
        await db.close()
    if found is None:
        print(f"no events for message {args.id} in the store", file=sys.stderr)
        return EXIT_NOT_FOUND
    if args.json:
        for event in found.events:
            print(msgspec.json.encode(event).decode())
        return 0
    print(f"message {found.message_id}: {len(found.events)} event(s)")
    last: dict[str, str] = {}
    for event in found.events:
        print("  " + format_stored(event))
        if event.recipient:
            last[event.recipient] = event.kind
    for recipient, kind in sorted(last.items()):
        print(f"  -> {recipient}: {kind}")
    return 0


@_store_errors
async def cmd_search(args: argparse.Namespace, config: Config) -> int:
    """``postline message search``: one page from the store, else a scan of the topic."""
    from shared.store.search import SearchQuery  # noqa: PLC0415

    try:
        query = SearchQuery(
            recipient=args.recipient,
            sender=args.sender,
            subject=args.subject,
            tag=args.tag,
            status=args.status,
            since=parse_time(args.since, "--since"),
            until=parse_time(args.until, "--until"),
            cursor=args.cursor,
            limit=args.limit,
        )
    except StoreInvalid as exc:
        return _fail(str(exc), EXIT_NOT_FOUND)
    url = store_url(config, existing_only=True)
    if url is None:
        return await _search_topic(args, config, query)
    import time  # noqa: PLC0415

    from shared.store.csvout import events_csv  # noqa: PLC0415
    from shared.store.db import open_database  # noqa: PLC0415
    from shared.store.search import search_events  # noqa: PLC0415

    db = await open_database(url)
    try:
        page = await search_events(db, query, args.tenant, now=time.time())
    finally:
        await db.close()
    if args.json:
        print(msgspec.json.encode(page).decode())
    elif args.csv:
        sys.stdout.write(events_csv(page.events))
    else:
        for event in page.events:
            print(format_stored(event))
    if page.next_cursor and not args.json:
        print(f"(more: --cursor {page.next_cursor})", file=sys.stderr)
    return 0


async def _search_topic(args: argparse.Namespace, config: Config, query: Any) -> int:
    """No store: read the whole events topic and keep what the query selects."""
    import time  # noqa: PLC0415

    from shared.cli.events import reader_bus  # noqa: PLC0415
    from shared.store.queries import time_range  # noqa: PLC0415

    if query.cursor:
        return _fail("--cursor needs the store ([store] in the config)", EXIT_NO_STORE)
    span = time_range(query.since, query.until, time.time())
    key, _, value = query.tag.partition("=")
    if query.tag and not value:
        key, value = "campaign", query.tag

    def keep(event: Event) -> bool:
        return (
            span.since <= event.at < span.until
            and (not query.recipient or event.recipient.lower() == query.recipient.lower())
            and (not query.sender or event.sender.lower() == query.sender.lower())
            and (not query.subject or getattr(event, "subject", "").startswith(query.subject))
            and (not query.tag or event.tags.get(key.strip()) == value.strip())
            and (not query.status or event.kind.value == query.status)
            and (args.tenant is None or event.tenant == args.tenant)
        )

    bus = reader_bus(config)
    await bus.start()
    try:
        found = await eventlog.scan(bus, keep)
    finally:
        await bus.close()
    events = sorted(found, key=lambda item: item.event.at, reverse=True)[: query.limit]
    for item in events:
        if args.json or args.csv:
            print(json.dumps(eventlog.event_json(item)))
        else:
            print(eventlog.format_line(item.event))
    return 0


@_store_errors
async def cmd_report(args: argparse.Namespace, config: Config) -> int:
    """``postline report``: totals, deliverability by provider, bounce reasons, domains."""
    import time  # noqa: PLC0415

    url = store_url(config, existing_only=True)
    if url is None:
        return _fail(
            "no store: reports need [store] (or `postline run`'s SQLite store)", EXIT_NO_STORE
        )
    from shared.store.csvout import report_csv  # noqa: PLC0415
    from shared.store.db import open_database  # noqa: PLC0415
    from shared.store.reports import tenant_report  # noqa: PLC0415

    try:
        since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    except StoreInvalid as exc:
        return _fail(str(exc), EXIT_NOT_FOUND)
    db = await open_database(url)
    try:
        report = await tenant_report(
            db,
            args.tenant,
            campaign=args.campaign,
            since=since,
            until=until,
            now=time.time(),
            series=args.hourly,
        )
    finally:
        await db.close()
    if args.json:
        print(msgspec.json.encode(report).decode())
    elif args.csv:
        sys.stdout.write(report_csv(report))
    else:
        for line in _report_lines(report):
            print(line)
    return 0


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _report_lines(report: Any) -> list[str]:
    scope = f"tenant {report.tenant}" if report.tenant else "all tenants"
    if report.campaign:
        scope += f", campaign {report.campaign}"
    t = report.totals
    lines = [
        f"{scope}: {eventlog.format_time(report.since)} to {eventlog.format_time(report.until)}",
        f"  accepted {t.accepted}  delivered {t.delivered}  deferred {t.deferred}  bounced "
        f"{t.bounced} (hard {t.bounced_hard}, soft {t.bounced_soft})  expired {t.expired}",
        f"  complaints {t.complained}  unsubscribes {t.unsubscribed}  opens {t.opened} "
        f"(+{t.opened_machine} machine)  clicks {t.clicked} (+{t.clicked_machine} machine)",
        f"  suppressed {t.suppressed}  rejected {t.rejected}  deliverability "
        f"{_rate(t.deliverability)}",
    ]
    # Events without a provider (accepted, suppressed, opens) are the "" provider's: no
    # delivery outcome, nothing to show in this table.
    providers = [p for p in report.providers if p.totals.delivered + p.totals.bounced]
    if providers:
        lines.append("  by provider:")
        lines += [
            f"    {p.provider:<12} delivered {p.totals.delivered:>8}  bounced "
            f"{p.totals.bounced:>7}  deliverability {_rate(p.totals.deliverability)}"
            for p in providers
        ]
    if report.bounce_reasons:
        lines.append("  top bounce reasons:")
        lines += [f"    {r.count:>8}  {r.classification}/{r.reason}" for r in report.bounce_reasons]
    if report.domains:
        lines.append("  top recipient domains:")
        lines += [
            f"    {d.domain:<30} delivered {d.delivered:>8}  deferred {d.deferred:>7}  "
            f"bounced {d.bounced:>7}"
            for d in report.domains
        ]
    for hour in report.hours or ():
        h = hour.totals
        lines.append(
            f"  {eventlog.format_time(hour.hour)}  accepted {h.accepted}  delivered "
            f"{h.delivered}  bounced {h.bounced}  opens {h.opened}  clicks {h.clicked}"
        )
    return lines
