"""deploy/check/dashboards.py: dashboard and alert queries against the real metrics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import dashboards
import pytest


@pytest.fixture
def boards(tmp_path: Path) -> Path:
    for path in dashboards.DASHBOARDS.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def edit(directory: Path, name: str) -> tuple[Path, dict[str, Any]]:
    path = directory / name
    return path, json.loads(path.read_text())


def first_query(board: dict[str, Any]) -> dict[str, Any]:
    panel = next(p for p in board["panels"] if p.get("targets"))
    return panel["targets"][0]  # type: ignore[no-any-return]


def test_the_dashboards_pass() -> None:
    assert dashboards.lint() == []


def test_a_metric_no_stage_exports(boards: Path) -> None:
    path, board = edit(boards, "postline-overview.json")
    first_query(board)["expr"] = "sum(rate(postline_ingest_mesages_total[$__rate_interval]))"
    path.write_text(json.dumps(board))
    found = dashboards.lint(boards)
    assert (
        "postline-overview.json: panel 'Pipeline throughput' A: metric "
        "'postline_ingest_mesages_total' is not exported by any stage"
    ) in found


def test_a_counter_without_total_is_not_exported(boards: Path) -> None:
    path, board = edit(boards, "postline-overview.json")
    first_query(board)["expr"] = "sum(rate(postline_ingest_messages[5m]))"
    path.write_text(json.dumps(board))
    assert any("'postline_ingest_messages' is not exported" in p for p in dashboards.lint(boards))


def test_a_query_that_does_not_parse(boards: Path) -> None:
    path, board = edit(boards, "postline-stages.json")
    first_query(board)["expr"] = "sum(rate(postline_bus_errors_total[5m])"
    path.write_text(json.dumps(board))
    found = dashboards.lint(boards)
    assert any("does not parse" in p and "postline_bus_errors_total[5m])" in p for p in found)


def test_a_panel_without_unit_or_with_a_fixed_datasource(boards: Path) -> None:
    path, board = edit(boards, "postline-overview.json")
    panel = next(p for p in board["panels"] if p["title"] == "Suppression list size")
    del panel["fieldConfig"]["defaults"]["unit"]
    panel["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
    path.write_text(json.dumps(board))
    found = dashboards.lint(boards)
    assert (
        "postline-overview.json: panel 'Suppression list size': no unit set "
        "(fieldConfig.defaults.unit)" in found
    )
    assert (
        "postline-overview.json: panel 'Suppression list size': datasource is not the "
        "${datasource} variable" in found
    )


def test_a_metric_on_no_dashboard(boards: Path) -> None:
    path, board = edit(boards, "postline-stages.json")
    board["panels"] = [
        p
        for p in board["panels"]
        if "postline_bouncer_dsns_sent_total" not in json.dumps(p.get("targets", []))
    ]
    path.write_text(json.dumps(board))
    assert "metric postline_bouncer_dsns_sent is on no dashboard" in dashboards.lint(boards)


def test_grafana_variables_are_substituted() -> None:
    names = dashboards.metric_names(
        'sum by (provider) (rate(postline_deliverer_attempts_total{namespace=~"$namespace"}'
        '[$__rate_interval])) / sum(rate({__name__="postline_in_flight"}[${__range}]))'
    )
    assert names == {"postline_deliverer_attempts_total", "postline_in_flight"}


def test_alert_expressions_are_linted_too(tmp_path: Path, boards: Path) -> None:
    rule = (dashboards.MONITORING / "prometheusrule.yaml").read_text()
    broken = tmp_path / "rule.yaml"
    broken.write_text(
        rule.replace(
            "postline_signer_key_reload_errors_total", "postline_signer_key_reload_failures_total"
        )
    )
    found = dashboards.lint(boards, broken)
    assert (
        "alert PostlineDkimKeyReloadErrors: metric 'postline_signer_key_reload_failures_total' "
        "is not exported by any stage"
    ) in found


def test_a_label_the_metric_does_not_have(boards: Path) -> None:
    path, board = edit(boards, "postline-overview.json")
    first_query(board)["expr"] = (
        'sum by (domain) (rate(postline_deliverer_attempts_total{recipient_domain="x"}[5m]))'
    )
    path.write_text(json.dumps(board))
    found = dashboards.lint(boards)
    where = "postline-overview.json: panel 'Pipeline throughput' A"
    assert (
        f"{where}: metric 'postline_deliverer_attempts_total' has no label 'recipient_domain'"
    ) in found
    assert f"{where}: no metric of the query has the label 'domain' it groups by" in found


def test_target_and_bucket_labels_are_known() -> None:
    query = dashboards.Query(
        "histogram_quantile(0.9, sum by (le, pod, provider) "
        '(rate(postline_deliverer_attempt_seconds_bucket{namespace="x", le="1.0"}[5m])))'
    )
    labels = {"postline_deliverer_attempt_seconds_bucket": frozenset({"provider", "le"})}
    assert dashboards.label_problems(query, labels) == []
