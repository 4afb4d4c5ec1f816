"""Query latencies of the reporting store at scale: N generated events in PostgreSQL.

    python bench/store_queries.py [--dsn postgresql://postline@127.0.0.1:25432/postline]
        [--events 10000000] [--days 30] [--runs 200] [--reuse]

It creates the database ``postline_bench_store`` (``--database``) on the server of ``--dsn``
(dropped first; ``--reuse`` keeps one already filled), builds the schema (the migrations and
the daily partitions, as the store stage does), and generates the events inside
PostgreSQL (``INSERT ... SELECT`` over ``generate_series``, a million rows a statement), so
ten million take minutes, not hours. The data look like a relay's month: ``--tenants``
tenants of very different sizes (the first ones send most), 20 campaigns each, a message
every few seconds spread over ``--days`` days, four events a message (accepted, then
delivered/deferred/bounced/suppressed, opens, clicks, a few complaints and unsubscribes),
``--recipients`` distinct recipients over real-looking domains and providers. The rollups are
filled from the events in SQL.

Then each query of ``shared.store`` runs ``--runs`` times through the code the CLI and the
API use, with parameters drawn from the data (a random message, recipient, sender, campaign
of the last day), and its p50/p99 are printed and written to bench/results/store_queries.json
with the plan of one run (``EXPLAIN``): the benchmark fails when a plan reads ``events`` with
a sequential scan.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from shared.store.db import Database, open_database
from shared.store.queries import message_history
from shared.store.reports import tenant_report
from shared.store.search import SearchQuery, search_events
from testing.storerows import rebuild_rollups
from testing.storeschema import create_schema

RESULTS = Path(__file__).resolve().parent / "results" / "store_queries.json"
DATABASE = "postline_bench_store"
END = 1796601600  # 2026-12-07T00:00:00Z: the data end here; the queries' clock
DAY = 86400
CHUNK = 250_000  # messages per INSERT (four events each)
TARGET_MS = 100.0

# One row per event; m is the message number, k its event (0: accepted).
_GENERATE = """
INSERT INTO events SELECT
  to_char(to_timestamp(at) AT TIME ZONE 'UTC', 'YYYYMMDD')::int, decode(md5(m || ':' || k), 'hex'),
  at, kind, 't' || tn, md5(m::text), rcpt || '@' || dom, dom, sender, split_part(sender, '@', 2),
  'Offer ' || cp || ' for tenant ' || tn || ': week ' || (h2 % 50),
  'c' || cp, '{"campaign": "c' || cp || '", "segment": "s' || (h2 % 10) || '"}', provider,
  'mx.' || dom, CASE WHEN kind = 'bounced' THEN (CASE WHEN h3 % 3 = 0 THEN 'hard' ELSE 'soft' END)
  WHEN kind = 'deferred' THEN 'soft' ELSE '' END,
  CASE WHEN kind IN ('bounced', 'deferred') THEN (ARRAY['userunknown', 'mailboxfull', 'blocked',
  'spam', 'policy', 'greylisted'])[1 + h3 % 6] ELSE '' END,
  CASE kind WHEN 'delivered' THEN 250 WHEN 'deferred' THEN 451 WHEN 'bounced' THEN 550 ELSE 0 END,
  '', CASE WHEN kind = 'bounced' THEN '5.1.1 no such user' ELSE '' END,
  kind IN ('opened', 'clicked') AND h3 % 5 = 0, '', '',
  '{"kind": "' || kind || '", "message_id": "' || md5(m::text) || '"}'
FROM (
  SELECT m, k, tn, cp, h2, h3, rcpt, dom, provider, sender,
    $3::double precision + (m::double precision / $4) * $5 + k * 40 + h3 % 600 AS at,
    CASE WHEN k = 0 THEN 'accepted'
      WHEN k = 1 THEN (CASE WHEN h3 % 1000 < 850 THEN 'delivered' WHEN h3 % 1000 < 920
        THEN 'deferred' WHEN h3 % 1000 < 975 THEN 'bounced' WHEN h3 % 1000 < 990
        THEN 'suppressed' ELSE 'rejected' END)
      WHEN k = 2 THEN (CASE WHEN h3 % 1000 < 550 THEN 'opened' WHEN h3 % 1000 < 650
        THEN 'deferred' ELSE 'delivered' END)
      ELSE (CASE WHEN h3 % 1000 < 350 THEN 'clicked' WHEN h3 % 1000 < 365 THEN 'unsubscribed'
        WHEN h3 % 1000 < 368 THEN 'complained' ELSE 'opened' END) END AS kind
  FROM (
    SELECT m, k, tn, h2, h3, (h2 % 20) AS cp, 'u' || r AS rcpt, d.dom, d.provider,
      'news' || (h2 % 3) || '@t' || tn || '.example' AS sender
    FROM (
      SELECT m, k, floor($6 * power((abs(hashint8(m)) % 1000000) / 1e6, 3))::int AS tn,
        abs(hashint8(m * 7 + 1)) AS h2, abs(hashint8(m * 13 + k + 5)) AS h3,
        abs(hashint8(m * 31)) % $7 AS r
      FROM generate_series($1::bigint, $2::bigint) m, generate_series(0, 3) k
    ) base
    JOIN LATERAL (SELECT CASE WHEN r % 100 < 30 THEN 'gmail.com' WHEN r % 100 < 42
      THEN 'outlook.com' WHEN r % 100 < 50 THEN 'hotmail.com' WHEN r % 100 < 60
      THEN 'yahoo.com' WHEN r % 100 < 65 THEN 'icloud.com' ELSE 'd' || (r % 400) || '.example'
      END AS dom) n ON true
    JOIN LATERAL (SELECT n.dom, CASE WHEN n.dom = 'gmail.com' THEN 'google'
      WHEN n.dom IN ('outlook.com', 'hotmail.com') THEN 'microsoft' WHEN n.dom = 'yahoo.com'
      THEN 'yahoo' WHEN n.dom = 'icloud.com' THEN 'apple' ELSE 'other' END AS provider) d ON true
  ) named
) rows
"""


def database_dsn(dsn: str, name: str) -> str:
    """``dsn`` with its database replaced by ``name``."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


async def create_database(admin_dsn: str, name: str) -> None:
    """Drop and create the benchmark's database."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def generate(db: Database, events: int, days: int, tenants: int, recipients: int) -> float:
    """Fill the store with ``events`` events; the seconds it took."""
    start_at = END - days * DAY
    await create_schema(
        db, [int(time.strftime("%Y%m%d", time.gmtime(start_at + d * DAY))) for d in range(days + 1)]
    )
    messages = events // 4
    started = time.perf_counter()
    for first in range(0, messages, CHUNK):
        last = min(first + CHUNK, messages) - 1
        await db.execute(
            _GENERATE,
            first,
            last,
            float(start_at),
            messages,
            float(days * DAY),
            tenants,
            recipients,
        )
        print(
            f"  {4 * (last + 1):>11,} events  {time.perf_counter() - started:7.1f} s",
            file=sys.stderr,
        )
    await rebuild_rollups(db)
    await db.execute("ANALYZE")
    return time.perf_counter() - started


class Recorder:
    """The store as the queries see it, keeping the last statement for ``EXPLAIN``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.dialect = db.dialect
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        self.statements.append((sql, args))
        return await self.db.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        self.statements.append((sql, args))
        return await self.db.fetchrow(sql, *args)


def _nodes(plan: dict[str, Any]) -> list[str]:
    out = [f"{plan['Node Type']} {plan.get('Relation Name', '')}".strip()]
    for child in plan.get("Plans", []):
        out.extend(_nodes(child))
    return out


async def plans(db: Database, recorder: Recorder) -> list[list[str]]:
    """The plan nodes of every statement the recorder saw."""
    found = []
    for sql, args in recorder.statements:
        rows = await db.fetch(f"EXPLAIN (FORMAT JSON) {sql}", *args)
        plan = rows[0]["QUERY PLAN"]
        found.append(_nodes((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]))
    return found


async def big_seq_scans(db: Database, found: list[list[str]]) -> list[str]:
    """The partitions of ``events`` read whole that hold more than a few pages of rows (the
    planner rightly reads a nearly empty partition, the day after the data, whole)."""
    names = sorted(
        {n.split()[-1] for nodes in found for n in nodes if n.startswith("Seq Scan events")}
    )
    big = []
    for name in names:
        pages = await db.fetchval("SELECT relpages FROM pg_class WHERE relname = $1", name)
        if pages and pages > 10:
            big.append(name)
    return big


def quantile(values: list[float], q: int) -> float:
    """The q-th percentile in milliseconds."""
    return statistics.quantiles(values, n=100)[q - 1] * 1000.0


async def samples(db: Database) -> list[dict[str, Any]]:
    """Events of the last day to draw query parameters from."""
    return await db.fetch(
        "SELECT message_id, tenant, recipient, sender, campaign, subject, at FROM events"
        " TABLESAMPLE SYSTEM (1) WHERE at >= $1 LIMIT 500",
        float(END - DAY),
    )


def queries(picks: list[dict[str, Any]]) -> dict[str, Callable[[Any], Awaitable[object]]]:
    """Each benchmarked query, taking the executor and drawing its own parameters."""
    now = float(END)
    week = now - 7 * DAY
    month = now - 30 * DAY

    def pick() -> dict[str, Any]:
        return random.choice(picks)

    def search(tenant: bool, **fields: Any) -> Callable[[Any], Awaitable[object]]:
        """A search whose ``fields`` name a sample's column (``"@recipient"``) or a value."""

        async def run(db: Any) -> object:
            p = pick()
            values = {
                k: p[v[1:]] if isinstance(v, str) and v.startswith("@") else v
                for k, v in fields.items()
            }
            if "subject" in values:
                values["subject"] = values["subject"][:12]
            scope = p["tenant"] if tenant else None
            return await search_events(db, SearchQuery(**values), scope, now=now)

        return run

    async def page_two(db: Any) -> object:
        p = pick()
        first = await search_events(db, SearchQuery(sender=p["sender"]), p["tenant"], now=now)
        query = SearchQuery(sender=p["sender"], cursor=first.next_cursor or "")
        return await search_events(db, query, p["tenant"], now=now)

    async def prefix(db: Any) -> object:
        p = pick()
        return await message_history(db, p["message_id"][:10], p["tenant"])

    async def campaign_report(db: Any) -> object:
        p = pick()
        return await tenant_report(db, p["tenant"], campaign=p["campaign"], since=week, now=now)

    return {
        "history_by_id": lambda db: message_history(db, pick()["message_id"], None),
        "history_by_prefix10_tenant": prefix,
        "search_recipient_30d_tenant": search(True, recipient="@recipient", since=month),
        "search_recipient_30d_admin": search(False, recipient="@recipient", since=month),
        "search_sender_24h_tenant": search(True, sender="@sender"),
        "search_sender_page2": page_two,
        "search_subject_prefix_24h_tenant": search(True, subject="@subject"),
        "search_campaign_7d_tenant": search(True, tag="@campaign", since=week),
        "search_tag_kv_24h_tenant": search(True, tag="segment=s3"),
        "search_bounced_24h_tenant": search(True, status="bounced"),
        "search_bounced_24h_admin": search(False, status="bounced"),
        "search_all_24h_admin": search(False),
        "report_tenant_30d": lambda db: tenant_report(db, pick()["tenant"], since=month, now=now),
        "report_campaign_7d": campaign_report,
        "report_tenant_7d_hourly": lambda db: tenant_report(
            db, pick()["tenant"], since=week, now=now, series=True
        ),
        "report_admin_24h": lambda db: tenant_report(db, None, now=now),
    }


async def measure(db: Database, runs: int) -> dict[str, Any]:
    """Run every query ``runs`` times; its p50, p99 and plan."""
    picks = await samples(db)
    results: dict[str, Any] = {}
    for name, query in queries(picks).items():
        recorder = Recorder(db)
        await query(recorder)  # warm, and the statements to explain
        latencies = []
        for _ in range(runs):
            t0 = time.perf_counter()
            await query(db)
            latencies.append(time.perf_counter() - t0)
        found = await plans(db, recorder)
        seq = await big_seq_scans(db, found)
        results[name] = {
            "p50_ms": round(quantile(latencies, 50), 2),
            "p99_ms": round(quantile(latencies, 99), 2),
            "seq_scans": seq,
            "plan": found,
        }
        print(
            f"{name:36} p50 {results[name]['p50_ms']:8.2f} ms  p99 "
            f"{results[name]['p99_ms']:8.2f} ms  {'SEQ SCAN ' + ','.join(seq) if seq else ''}"
        )
    return results


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--dsn",
        default=os.environ.get(
            "POSTLINE_TEST_POSTGRES", "postgresql://postline@127.0.0.1:25432/postline"
        ),
    )
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--recipients", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--reuse", action="store_true", help="keep the data of the last run")
    parser.add_argument("--database", default=DATABASE, help="the database made (dropped first)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    random.seed(16)
    load_s = None
    if not args.reuse:
        await create_database(args.dsn, args.database)
    db = await open_database(database_dsn(args.dsn, args.database), timeout=3600)
    try:
        if not args.reuse:
            load_s = await generate(db, args.events, args.days, args.tenants, args.recipients)
        count = await db.fetchval("SELECT count(*) FROM events")
        print(f"{count:,} events" + (f", generated in {load_s:.0f} s" if load_s else ""))
        results = await measure(db, args.runs)
    finally:
        await db.close()
    slow = [n for n, r in results.items() if r["p99_ms"] > TARGET_MS]
    seq = [n for n, r in results.items() if r["seq_scans"]]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "events": count,
                "days": args.days,
                "tenants": args.tenants,
                "runs": args.runs,
                "generate_s": load_s,
                "queries": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(
        f"over {TARGET_MS:.0f} ms at p99: {', '.join(slow) or 'none'}; "
        f"sequential scans of events: {', '.join(seq) or 'none'}"
    )
    return 1 if seq else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
