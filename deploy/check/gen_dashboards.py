"""Writes the Grafana dashboards in ``deploy/k8s/components/monitoring/dashboards/``.

Three dashboards: the pipeline overview (throughput, lag, delay, deliverability, complaints,
suppressions), the per-stage dashboard (every metric each stage exports, by stage row), and
the per-tenant / per-campaign one, which reads the reporting store's PostgreSQL
(``store_dashboard.py``).
``dashboards.py`` lints the written JSON (PromQL parses, metric names exist, units set) and
fails when the committed files are stale. Owns only the dashboards' content.

Run: ``python deploy/check/gen_dashboards.py [--check]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana import NS, RATE, Panel, dashboard, panel, row
from panels import (
    bouncer_panels,
    deliverer_panels,
    ingest_panels,
    limits_panels,
    quantiles,
    rate,
    reputation_panels,
    signer_panels,
    store_panels,
    tenant_panels,
    webhooks_panels,
)
from store_dashboard import store_dashboard

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "deploy/k8s/components/monitoring/dashboards"
GROUPS = (
    'consumergroup=~"postline-'
    '(signer|deliverer|deliverer-bulk|bouncer|reputation|deliverer-retry|store)"'
)


def overview_panels() -> list[Panel]:
    """The pipeline overview."""
    delivered = rate("postline_deliverer_attempts_total", 'result="delivered"', "provider")
    bounced = rate("postline_deliverer_attempts_total", 'result=~"delivered|bounced"', "provider")
    return [
        panel(
            "Pipeline throughput",
            "ops",
            [
                (rate("postline_ingest_messages_total", 'result="accepted"'), "accepted"),
                (rate("postline_signer_messages_total", 'result=~"signed|unsigned"'), "signed"),
                (rate("postline_deliverer_attempts_total", 'result="delivered"'), "delivered"),
                (rate("postline_deliverer_attempts_total", 'result="deferred"'), "deferred"),
                (rate("postline_deliverer_attempts_total", 'result="bounced"'), "bounced"),
            ],
            description="Messages accepted and signed, recipients delivered/deferred/bounced.",
        ),
        panel(
            "Consumer lag per stage",
            "short",
            [
                (
                    f"sum by (consumergroup) (kafka_consumergroup_lag{{{NS}, {GROUPS}}})",
                    "{{consumergroup}}",
                ),
            ],
            description="Records waiting per consumer group (retry tiers wait by design).",
        ),
        panel(
            "End-to-end delivery delay",
            "s",
            quantiles("postline_deliverer_delivery_delay_seconds"),
            description="From acceptance by ingest to a 2xx from the recipient's MX.",
        ),
        panel(
            "Deliverability by provider",
            "percentunit",
            [
                (f"{delivered} / {bounced}", "{{provider}}"),
            ],
            description="delivered / (delivered + bounced).",
        ),
        panel(
            "Complaint rate (24h)",
            "percentunit",
            [
                (
                    f"sum(increase(postline_bouncer_complaints_total{{{NS}}}[1d])) / "
                    "sum(increase(postline_deliverer_attempts_total"
                    f'{{{NS}, result="delivered"}}[1d]))',
                    "complaints / delivered",
                ),
            ],
            kind="stat",
            width=6,
            description="Providers filter bulk senders above 0.1%.",
        ),
        panel(
            "Paused senders",
            "short",
            [
                (
                    f'max by (scope) (postline_reputation_scopes{{{NS}, level="paused"}})',
                    "{{scope}}",
                ),
            ],
            kind="stat",
            width=6,
            description="Tenants and sending domains the reputation stage paused "
            "(postline reputation).",
        ),
        panel(
            "Suppression list size",
            "short",
            [
                (f"max(postline_bouncer_suppression_list_size{{{NS}}})", "addresses"),
            ],
            kind="stat",
            width=6,
        ),
        panel(
            "Bounces by class",
            "ops",
            [
                (rate("postline_bouncer_bounces_total", by="class"), "{{class}}"),
            ],
        ),
        panel(
            "Dead-lettered records",
            "ops",
            [
                (
                    rate("postline_records_dead_lettered_total", by="stage, reason"),
                    "{{stage}} {{reason}}",
                ),
            ],
        ),
        panel(
            "Versions running",
            "short",
            [
                (f"count by (version) (postline_build_info{{{NS}}})", "{{version}}"),
            ],
            kind="stat",
        ),
    ]


def core_panels() -> list[Panel]:
    """The runtime metrics every stage shares, for the ``$stage`` selection."""
    st = 'stage=~"$stage"'
    return [
        row("Runtime (every stage)"),
        panel(
            "Records consumed",
            "ops",
            [(rate("postline_records_consumed_total", st, "stage, topic"), "{{stage}} {{topic}}")],
        ),
        panel("Bus errors", "ops", [(rate("postline_bus_errors_total", st, "stage"), "{{stage}}")]),
        panel(
            "Dead background tasks and failed work",
            "ops",
            [
                (
                    rate("postline_task_failures_total", st, "stage, task"),
                    "task {{stage}} {{task}}",
                ),
                (
                    rate("postline_work_failures_total", st, "stage, reason"),
                    "work {{stage}} {{reason}}",
                ),
            ],
        ),
        panel(
            "Transaction commit time p99",
            "s",
            [
                (
                    f"histogram_quantile(0.99, sum by (le, stage) (rate("
                    f"postline_transaction_commit_seconds_bucket{{{NS}, {st}}}[{RATE}])))",
                    "{{stage}}",
                )
            ],
        ),
        panel(
            "Batch size p90",
            "short",
            [
                (
                    f"histogram_quantile(0.9, sum by (le, stage) (rate("
                    f"postline_batch_records_bucket{{{NS}, {st}}}[{RATE}])))",
                    "{{stage}}",
                )
            ],
        ),
        panel(
            "In flight",
            "short",
            [(f"sum by (stage) (postline_in_flight{{{NS}, {st}}})", "{{stage}}")],
        ),
        panel(
            "Ready pods",
            "short",
            [(f"sum by (stage) (postline_stage_ready{{{NS}, {st}}})", "{{stage}}")],
        ),
    ]


def stages_dashboard() -> dict[str, Any]:
    """The per-stage dashboard, with a ``stage`` variable for the runtime rows."""
    board = dashboard(
        "postline-stages",
        "Postline / Stages",
        "Every metric of every stage: runtime, ingest, limits, signer, deliverer, bouncer, "
        "reputation, webhooks, store.",
        core_panels()
        + ingest_panels()
        + limits_panels()
        + signer_panels()
        + deliverer_panels()
        + bouncer_panels()
        + reputation_panels()
        + webhooks_panels()
        + store_panels()
        + tenant_panels(),
    )
    board["templating"]["list"].append(
        {
            "name": "stage",
            "label": "Stage",
            "type": "custom",
            "query": "ingest,signer,deliverer,bouncer,reputation,webhooks,store",
            "includeAll": True,
            "multi": True,
            "current": {},
            "hide": 0,
        }
    )
    return board


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard."""
    return {
        "postline-overview.json": dashboard(
            "postline-overview",
            "Postline / Pipeline overview",
            "Throughput, lag, delay and deliverability of the whole pipeline.",
            overview_panels(),
        ),
        "postline-stages.json": stages_dashboard(),
        "postline-store.json": store_dashboard(),
    }


def render(board: dict[str, Any]) -> str:
    """A dashboard's file text."""
    return json.dumps(board, indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards, or with ``--check`` fail when a committed file differs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is stale")
    args = parser.parse_args(argv)
    stale = []
    for name, board in dashboards().items():
        path = DASHBOARD_DIR / name
        text = render(board)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
            print(f"wrote {path}")
    for path in stale:
        print(f"{path}: stale; run python deploy/check/gen_dashboards.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
