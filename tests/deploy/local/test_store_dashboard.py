"""Every query of the store's Grafana dashboard, run against a real PostgreSQL.

The offline lint (``tests/deploy/test_sqllint.py``) proves the SQL parses and names real
tables and columns; this proves it runs, with Grafana's macros and multi-valued variables
expanded the way Grafana expands them, and that the figures are the rollups' figures.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from shared.store.db import open_database
from shared.store.migrate import migrate
from tests.deploy.tools import CHECK_DIR, require_tools

BOARD = CHECK_DIR.parents[1] / "deploy/k8s/components/monitoring/dashboards/postline-store.json"
HOUR = 1_780_000_000 // 3600 * 3600  # a fixed hour; the dashboard's range is around it
FROM, TO = HOUR - 86_400, HOUR + 86_400

pytestmark = pytest.mark.postgres


def grafana(sql: str, tenants: list[str], campaigns: list[str]) -> str:
    """``sql`` as Grafana sends it for the time range FROM..TO and the variables chosen."""
    sql = re.sub(r"\$__unixEpochFilter\((\w+)\)", rf"\1 >= {FROM} AND \1 <= {TO}", sql)
    quoted = {
        "tenant": ",".join(f"'{t}'" for t in tenants),
        "campaign": ",".join(f"'{c}'" for c in campaigns),
    }
    return re.sub(r"\$\{?(tenant|campaign)\}?", lambda m: quoted[m[1]], sql)


HOURLY = (
    "INSERT INTO rollup_hourly (hour, day, tenant, sender_domain, campaign, provider, accepted,"
    " delivered, deferred, bounced, bounced_hard, bounced_soft, complained, unsubscribed,"
    " opened, opened_machine, clicked, clicked_machine)"
    " VALUES ($1, 20260528, $2, 'acme.example', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
    " $13, $14, $15, $16)"
)


async def seed(db: Any) -> None:
    rows = [
        # tenant, campaign, provider, accepted, delivered, deferred, bounced, hard, soft,
        # complained, unsubscribed, opened, opened_machine, clicked, clicked_machine
        ("acme", "spring", "gmail", 10, 8, 3, 2, 1, 1, 1, 1, 5, 3, 2, 1),
        ("acme", "spring", "microsoft", 4, 4, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0),
        ("acme", "autumn", "gmail", 6, 3, 1, 3, 3, 0, 0, 0, 0, 0, 0, 0),
        ("globex", "launch", "yahoo", 100, 90, 5, 10, 5, 5, 2, 0, 40, 10, 9, 2),
    ]
    await db.executemany(HOURLY, [(HOUR, *r) for r in rows])
    await db.executemany(
        "INSERT INTO rollup_reasons (hour, day, tenant, campaign, kind, classification, reason,"
        " count) VALUES ($1, 20260528, $2, $3, 'bounced', $4, $5, $6)",
        [
            (HOUR, "acme", "spring", "hard", "userunknown", 1),
            (HOUR, "acme", "spring", "soft", "mailboxfull", 1),
            (HOUR, "acme", "autumn", "hard", "userunknown", 3),
            (HOUR, "globex", "launch", "hard", "blocked", 5),
        ],
    )
    await db.executemany(
        "INSERT INTO rollup_domains (hour, day, tenant, campaign, recipient_domain, delivered,"
        " deferred, bounced) VALUES ($1, 20260528, $2, $3, $4, $5, $6, $7)",
        [
            (HOUR, "acme", "spring", "gmail.com", 8, 3, 2),
            (HOUR, "acme", "autumn", "example.net", 3, 1, 3),
        ],
    )


def store_queries() -> dict[str, str]:
    board = json.loads(BOARD.read_text())
    found = {
        f"panel {panel['title']} {target['refId']}": target["rawSql"]
        for panel in board["panels"]
        for target in panel.get("targets", [])
    }
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            found[f"variable {variable['name']}"] = variable["query"]
    return found


async def test_every_query_runs_and_reports_the_rollups(postgres_db: str) -> None:
    require_tools("test_store_dashboard.py")
    db = await open_database(postgres_db)
    try:
        await migrate(db, now=1.0)
        await seed(db)
        queries = store_queries()
        results = {
            where: await db.fetch(grafana(sql, ["acme"], ["spring"]))
            for where, sql in queries.items()
        }
    finally:
        await db.close()
    # Every query ran and answered something for the chosen tenant and campaign.
    assert all(results.values()), [w for w, rows in results.items() if not rows]

    totals = results["panel Messages and outcomes A"][0]
    assert (totals["accepted"], totals["delivered"], totals["bounced"]) == (14, 12, 2)
    assert results["panel Deliverability A"][0]["deliverability"] == pytest.approx(12 / 14)
    assert results["panel Complaint rate A"][0]["complaints"] == pytest.approx(1 / 12)
    by_provider = {
        r["provider"]: r["deliverability"]
        for r in results["panel Deliverability by mailbox provider A"]
    }
    assert by_provider == {"gmail": pytest.approx(0.8), "microsoft": pytest.approx(1.0)}
    series = results["panel Opens and clicks per hour: people and machines A"]
    assert [(r["time"], r["opens"], r["machine opens"]) for r in series] == [(HOUR, 6, 3)]
    reasons = [(r["reason"], r["bounces"]) for r in results["panel Top bounce reasons A"]]
    assert sorted(reasons) == [("mailboxfull", 1), ("userunknown", 1)]
    # The campaigns table is per tenant, whatever campaign is chosen; the tenants table all.
    assert {r["campaign"] for r in results["panel Campaigns A"]} == {"spring", "autumn"}
    assert [r["tenant"] for r in results["panel Tenants A"]] == ["globex", "acme"]
    assert [r["tenant"] for r in results["variable tenant"]] == ["acme", "globex"]
    assert [r["campaign"] for r in results["variable campaign"]] == ["autumn", "spring"]
