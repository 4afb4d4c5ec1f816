"""The per-tenant / per-campaign dashboard, fed by the reporting store (PostgreSQL).

Every query reads the rollup tables the store stage keeps (``shared/store/migrations``), never
``events``: an hour's row per tenant, sending domain, campaign and provider, so a month is a
few thousand rows whatever the volume. ``sqllint.py`` parses each query with PostgreSQL's own
parser and resolves its tables and columns against the migrations; the tests run each one
against a real PostgreSQL. Owns only this dashboard's content.
"""

from __future__ import annotations

from typing import Any

from grafana import Panel, dashboard, row, sql_panel, store_templating

#: The dashboard's filters: the time picker and the tenant and campaign variables.
FILTER = "$__unixEpochFilter(hour) AND tenant IN ($tenant) AND campaign IN ($campaign)"


def _ratio(numerator: str, denominator: str) -> str:
    return f"sum({numerator})::float8 / nullif({denominator}, 0)"


DELIVERABILITY = _ratio("delivered", "sum(delivered) + sum(bounced)")


def _hourly(columns: str) -> str:
    return (
        f"SELECT hour AS time, {columns}\nFROM rollup_hourly\nWHERE {FILTER}\n"
        "GROUP BY hour\nORDER BY hour"
    )


def summary_panels() -> list[Panel]:
    """Totals and rates over the picked time range."""
    return [
        sql_panel(
            "Messages and outcomes",
            "short",
            [
                (
                    "SELECT sum(accepted) AS accepted, sum(delivered) AS delivered,\n"
                    "  sum(deferred) AS deferred, sum(bounced) AS bounced,\n"
                    "  sum(complained) AS complaints, sum(unsubscribed) AS unsubscribes\n"
                    f"FROM rollup_hourly\nWHERE {FILTER}",
                    "table",
                )
            ],
            kind="stat",
            description="Messages accepted; recipients delivered, deferred (attempts), "
            "bounced; complaints and unsubscribes, over the time range.",
            width=12,
        ),
        sql_panel(
            "Deliverability",
            "percentunit",
            [
                (
                    f"SELECT {DELIVERABILITY} AS deliverability\nFROM rollup_hourly\n"
                    f"WHERE {FILTER}",
                    "table",
                )
            ],
            kind="stat",
            description="delivered / (delivered + bounced): the share of recipients whose "
            "mail reached the mailbox provider.",
            width=6,
        ),
        sql_panel(
            "Complaint rate",
            "percentunit",
            [
                (
                    f"SELECT {_ratio('complained', 'sum(delivered)')} AS complaints\n"
                    f"FROM rollup_hourly\nWHERE {FILTER}",
                    "table",
                )
            ],
            kind="stat",
            description="Complaints per delivered recipient. Gmail and Yahoo ask senders to "
            "stay under 0.3% (better under 0.1%).",
            width=6,
        ),
    ]


def trend_panels() -> list[Panel]:
    """Per-hour series."""
    return [
        sql_panel(
            "Outcomes per hour",
            "short",
            [
                (
                    _hourly(
                        "sum(delivered) AS delivered, sum(deferred) AS deferred,\n"
                        '  sum(bounced_hard) AS "hard bounces", '
                        'sum(bounced_soft) AS "soft bounces", sum(expired) AS expired'
                    ),
                    "time_series",
                )
            ],
            description="Recipients delivered, deferred, bounced (hard and soft) and expired "
            "per hour.",
        ),
        sql_panel(
            "Opens and clicks per hour: people and machines",
            "short",
            [
                (
                    _hourly(
                        'sum(opened) AS opens, sum(opened_machine) AS "machine opens",\n'
                        '  sum(clicked) AS clicks, sum(clicked_machine) AS "machine clicks"'
                    ),
                    "time_series",
                )
            ],
            description="Opens and clicks by people, apart from those a privacy proxy or a "
            "link scanner made (Apple Mail Privacy Protection prefetches every image).",
        ),
        sql_panel(
            "Complaints, unsubscribes and suppressed recipients per hour",
            "short",
            [
                (
                    _hourly(
                        "sum(complained) AS complaints, sum(unsubscribed) AS unsubscribes,\n"
                        "  sum(suppressed) AS suppressed, sum(rejected) AS rejected"
                    ),
                    "time_series",
                )
            ],
            description="A jump after a campaign is the first sign of a bad list.",
        ),
        sql_panel(
            "Deliverability by mailbox provider",
            "percentunit",
            [
                (
                    f"SELECT provider, {DELIVERABILITY} AS deliverability\n"
                    f"FROM rollup_hourly\nWHERE {FILTER}\nGROUP BY provider\n"
                    "ORDER BY sum(delivered) + sum(bounced) DESC\nLIMIT 12",
                    "table",
                )
            ],
            kind="bargauge",
            description="delivered / (delivered + bounced) per provider (Gmail, Microsoft, "
            "Yahoo, ...): a low one names where the trouble is.",
        ),
    ]


def table_panels() -> list[Panel]:
    """Top reasons, domains and campaigns."""
    return [
        sql_panel(
            "Top bounce reasons",
            "short",
            [
                (
                    "SELECT classification, reason, sum(count) AS bounces\n"
                    "FROM rollup_reasons\n"
                    f"WHERE {FILTER} AND kind = 'bounced'\n"
                    "GROUP BY classification, reason\nORDER BY bounces DESC\nLIMIT 20",
                    "table",
                )
            ],
            kind="table",
            description="Why recipients bounced (hard or soft, and the reason the bouncer "
            "read in the reply or report).",
        ),
        sql_panel(
            "Top recipient domains",
            "short",
            [
                (
                    "SELECT recipient_domain AS domain, sum(delivered) AS delivered,\n"
                    "  sum(deferred) AS deferred, sum(bounced) AS bounced\n"
                    f"FROM rollup_domains\nWHERE {FILTER}\n"
                    "GROUP BY recipient_domain\n"
                    "ORDER BY sum(delivered) + sum(bounced) DESC\nLIMIT 20",
                    "table",
                )
            ],
            kind="table",
            description="The recipient domains mailed most, with their outcomes.",
        ),
        sql_panel(
            "Campaigns",
            "short",
            [
                (
                    "SELECT campaign, sum(accepted) AS accepted, sum(delivered) AS delivered,\n"
                    "  sum(bounced) AS bounced, sum(complained) AS complaints,\n"
                    "  sum(opened) AS opens, sum(clicked) AS clicks,\n"
                    f"  round(({DELIVERABILITY} * 100)::numeric, 2) AS "
                    '"deliverability %"\n'
                    "FROM rollup_hourly\n"
                    "WHERE $__unixEpochFilter(hour) AND tenant IN ($tenant)\n"
                    "GROUP BY campaign\nORDER BY accepted DESC\nLIMIT 50",
                    "table",
                )
            ],
            kind="table",
            description="Each campaign (the message's campaign tag) of the chosen tenants.",
            width=24,
        ),
        sql_panel(
            "Tenants",
            "short",
            [
                (
                    "SELECT tenant, sum(accepted) AS accepted, sum(delivered) AS delivered,\n"
                    "  sum(bounced) AS bounced, sum(complained) AS complaints,\n"
                    f"  round(({DELIVERABILITY} * 100)::numeric, 2) AS "
                    '"deliverability %"\n'
                    "FROM rollup_hourly\nWHERE $__unixEpochFilter(hour)\n"
                    "GROUP BY tenant\nORDER BY accepted DESC\nLIMIT 100",
                    "table",
                )
            ],
            kind="table",
            description="Every tenant side by side (the operator's view).",
            width=24,
        ),
    ]


def store_dashboard() -> dict[str, Any]:
    """The dashboard."""
    variables = store_templating(
        [
            (
                "tenant",
                "Tenant",
                "SELECT DISTINCT tenant FROM rollup_hourly WHERE $__unixEpochFilter(hour) "
                "ORDER BY 1",
            ),
            (
                "campaign",
                "Campaign",
                "SELECT DISTINCT campaign FROM rollup_hourly "
                "WHERE $__unixEpochFilter(hour) AND tenant IN ($tenant) ORDER BY 1",
            ),
        ]
    )
    board = dashboard(
        "postline-store",
        "Postline / Tenants and campaigns",
        "Per-tenant and per-campaign outcomes, deliverability, engagement and bounce reasons "
        "from the reporting store.",
        [
            row("Summary"),
            *summary_panels(),
            row("Per hour"),
            *trend_panels(),
            row("Reasons, domains, campaigns"),
            *table_panels(),
        ],
        variables,
    )
    board["time"] = {"from": "now-7d", "to": "now"}
    return board
