"""Lints the Grafana dashboards: every query parses and uses only metrics that exist.

For each dashboard JSON in ``deploy/k8s/components/monitoring/dashboards/`` and each alert
expression of the PrometheusRule:

- Grafana's variables are replaced (``$__rate_interval`` -> ``5m``) and the expression is
  parsed with ``promql_parser``; every expression is also parsed by promtool itself (as a
  recording rule in a scratch rule file), so both parsers must accept it;
- every metric name a selector uses must be a sample name in the exposition text the real
  services produce (``exposition.py``) or a known external metric (``up``, Kafka Exporter),
  every label it matches on must be one of that metric's (or a target label Prometheus adds),
  and every label an aggregation groups by must belong to one of the query's metrics;
- every panel uses the ``${datasource}`` variable and sets a unit;
- the reporting store's dashboard (PostgreSQL queries, not PromQL) goes through ``sqllint``;
- every metric the services export appears in at least one dashboard query.
Owns this lint.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import promql_parser
import sqllint
import yaml
from common import MONITORING, run, tool
from exposition import families
from rules import rule_groups

DASHBOARDS = MONITORING / "dashboards"
#: Metrics scraped from outside Postline (Prometheus' own, Strimzi's Kafka Exporter): labels.
EXTERNAL: dict[str, frozenset[str]] = {
    "up": frozenset(),
    "kafka_consumergroup_lag": frozenset({"consumergroup", "topic", "partition"}),
    "kafka_consumergroup_lag_sum": frozenset({"consumergroup", "topic"}),
}
#: Labels Prometheus (and the Prometheus Operator's PodMonitor) add to every scraped series.
TARGET_LABELS = frozenset(
    {
        "job",
        "instance",
        "namespace",
        "pod",
        "container",
        "endpoint",
        "service",
        "app_kubernetes_io_component",
    }
)
_VARIABLE = re.compile(
    r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}"
)
_LABEL_VALUES = re.compile(r"^label_values\((.+),\s*[a-zA-Z_]\w*\)$")
DATASOURCE_UID = "${datasource}"


def expressions(board: dict[str, Any], name: str) -> Iterator[tuple[str, str]]:
    """(where, expr) for every query of a dashboard, template variable queries included."""
    for panel in board.get("panels", []):
        for target in panel.get("targets", []):
            if "expr" in target:  # the store dashboard's are SQL (sqllint.py)
                yield f"{name}: panel {panel.get('title')!r} {target.get('refId')}", target["expr"]
    for variable in board.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else ""
        match = _LABEL_VALUES.match(text.strip())
        if match:
            yield f"{name}: variable {variable['name']!r}", match.group(1)


class Query:
    """What an expression refers to: metric names, label matchers per metric, grouping labels."""

    def __init__(self, expr: str) -> None:
        """Parse ``expr`` (Grafana variables substituted); raises ValueError when it does not."""
        self.names: set[str] = set()
        self.matchers: list[tuple[str, str]] = []  # (metric, label)
        self.grouping: set[str] = set()
        promql_parser.walk(promql_parser.parse(_VARIABLE.sub("5m", expr)), self._visit)

    def _visit(self, node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = node.matchers.matchers
            name = node.name or next((m.value for m in matchers if m.name == "__name__"), "")
            if name:
                self.names.add(name)
            self.matchers += [(name, m.name) for m in matchers if m.name != "__name__"]
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            self.grouping |= set(node.modifier.labels)
        return True


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (raises ValueError when it does not parse)."""
    return Query(expr).names


def label_problems(query: Query, labels: dict[str, frozenset[str]]) -> list[str]:
    """Labels matched or grouped by that the metrics of the query do not have."""
    problems = []
    for metric, label in query.matchers:
        known = labels.get(metric)
        if known is not None and label not in known | TARGET_LABELS:
            problems.append(f"metric {metric!r} has no label {label!r}")
    available = set(TARGET_LABELS) | {"le"}
    for name in query.names:
        available |= labels.get(name, frozenset())
    problems += [
        f"no metric of the query has the label {label!r} it groups by"
        for label in sorted(query.grouping - available)
    ]
    return problems


def panel_problems(board: dict[str, Any], name: str) -> Iterable[str]:
    """Datasource variable and unit on every panel."""
    variables = {v.get("name") for v in board.get("templating", {}).get("list", [])}
    if "datasource" not in variables:
        yield f"{name}: no 'datasource' template variable"
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            continue
        title = panel.get("title")
        if (panel.get("datasource") or {}).get("uid") != DATASOURCE_UID:
            yield f"{name}: panel {title!r}: datasource is not the ${{datasource}} variable"
        for target in panel.get("targets", []):
            if (target.get("datasource") or {}).get("uid", DATASOURCE_UID) != DATASOURCE_UID:
                yield f"{name}: panel {title!r}: a query's datasource is hard-coded"
        if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            yield f"{name}: panel {title!r}: no unit set (fieldConfig.defaults.unit)"


def _promtool_parse(exprs: list[tuple[str, str]]) -> list[str]:
    rules = [
        {"record": f"lint:expr_{i}", "expr": _VARIABLE.sub("5m", expr)}
        for i, (_, expr) in enumerate(exprs)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dashboard-queries.yaml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "lint", "rules": rules}]}))
        result = run([tool("promtool"), "check", "rules", str(path)])
    if result.returncode == 0:
        return []
    return [f"promtool cannot parse a dashboard query:\n{result.stdout}{result.stderr}"]


def lint(
    dashboard_dir: Path = DASHBOARDS,
    rule_file: Path = MONITORING / "prometheusrule.yaml",
) -> list[str]:
    """Every problem of every dashboard and alert expression."""
    exported_families = families()
    exported = {sample: fam.name for fam in exported_families for sample in fam.samples}
    labels = {
        sample: frozenset(fam.labels) | ({"le"} if sample.endswith("_bucket") else set())
        for fam in exported_families
        for sample in fam.samples
    }
    labels.update(EXTERNAL)
    problems: list[str] = []
    exprs: list[tuple[str, str]] = []
    used: set[str] = set()
    for path in sorted(dashboard_dir.glob("*.json")):
        board = json.loads(path.read_text())
        problems += panel_problems(board, path.name)
        problems += sqllint.lint(board, path.name)
        exprs += list(expressions(board, path.name))
    dashboard_count = len(exprs)
    for group in rule_groups(rule_file)["groups"]:  # type: ignore[attr-defined]
        exprs += [(f"alert {r.get('alert')}", r["expr"]) for r in group["rules"]]
    for index, (where, expr) in enumerate(exprs):
        try:
            query = Query(expr)
        except ValueError as exc:
            problems.append(f"{where}: does not parse: {exc}\n    {expr}")
            continue
        names = query.names
        for metric in sorted(names - EXTERNAL.keys() - exported.keys()):
            problems.append(f"{where}: metric {metric!r} is not exported by any stage")
        problems += [f"{where}: {problem}" for problem in label_problems(query, labels)]
        if index < dashboard_count:
            used |= {exported[n] for n in names if n in exported}
    problems += _promtool_parse(exprs[:dashboard_count])
    for family in sorted({fam for fam in exported.values()} - used):
        problems.append(f"metric {family} is on no dashboard")
    return problems
