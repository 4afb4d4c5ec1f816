"""Building blocks of Grafana dashboard JSON: the datasource and namespace variables, panels.

Every panel and query uses the ``${datasource}`` variable (no hard-coded datasource uid) and
every panel sets a unit, which ``dashboards.py`` checks. Owns only the JSON shapes; the
dashboards' content is in ``gen_dashboards.py``.
"""

from __future__ import annotations

from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: The reporting store's dashboard reads PostgreSQL (the store's own tables), not Prometheus.
STORE_DATASOURCE = {"type": "grafana-postgresql-datasource", "uid": "${datasource}"}
#: Every query filters on the namespace variable (one Postline per namespace).
NS = 'namespace=~"$namespace"'
RATE = "$__rate_interval"

Panel = dict[str, Any]


def templating() -> dict[str, Any]:
    """The ``datasource`` and ``namespace`` variables."""
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
                "refresh": 1,
            },
            {
                "name": "namespace",
                "label": "Namespace",
                "type": "query",
                "datasource": DATASOURCE,
                "definition": "label_values(postline_build_info, namespace)",
                "query": {
                    "query": "label_values(postline_build_info, namespace)",
                    "refId": "namespace",
                },
                "refresh": 2,
                "includeAll": True,
                "multi": True,
                "current": {},
                "hide": 0,
            },
        ]
    }


def panel(
    title: str,
    unit: str,
    queries: list[tuple[str, str]],
    *,
    kind: str = "timeseries",
    description: str = "",
    width: int = 12,
) -> Panel:
    """A panel with ``(expr, legend)`` queries; the layout is set by :func:`layout`."""
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "gridPos": {"h": 8, "w": width, "x": 0, "y": 0},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
            }
            for i, (expr, legend) in enumerate(queries)
        ],
    }


def sql_panel(
    title: str,
    unit: str,
    queries: list[tuple[str, str]],
    *,
    kind: str = "timeseries",
    description: str = "",
    width: int = 12,
) -> Panel:
    """A panel of the store's dashboard with ``(sql, format)`` queries (format:
    ``time_series`` or ``table``)."""
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": STORE_DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "gridPos": {"h": 8, "w": width, "x": 0, "y": 0},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": STORE_DATASOURCE,
                "editorMode": "code",
                "format": fmt,
                "rawQuery": True,
                "rawSql": sql,
            }
            for i, (sql, fmt) in enumerate(queries)
        ],
    }


def store_templating(variables: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The store dashboard's variables: its PostgreSQL data source, then ``(name, label,
    sql)`` query variables (multi-valued, with All)."""
    listed: list[dict[str, Any]] = [
        {
            "name": "datasource",
            "label": "Reporting store",
            "type": "datasource",
            "query": STORE_DATASOURCE["type"],
            "current": {},
            "hide": 0,
            "refresh": 1,
        }
    ]
    listed += [
        {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": STORE_DATASOURCE,
            "definition": sql,
            "query": sql,
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "current": {},
            "hide": 0,
        }
        for name, label, sql in variables
    ]
    return {"list": listed}


def row(title: str) -> Panel:
    """A row header (no queries, no unit)."""
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0},
    }


def layout(panels: list[Panel]) -> list[Panel]:
    """Place panels left to right, top to bottom, and number them."""
    x = y = height = 0
    for index, item in enumerate(panels, start=1):
        pos = item["gridPos"]
        if item["type"] == "row" or x + pos["w"] > 24:
            x, y, height = 0, y + height, 0
        pos["x"], pos["y"] = x, y
        item["id"] = index
        x += pos["w"]
        height = max(height, pos["h"])
        if item["type"] == "row":
            x, y, height = 0, y + pos["h"], 0
    return panels


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[Panel],
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A complete dashboard (``variables``: the templating; default the Prometheus ones)."""
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["postline"],
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "timezone": "browser",
        "templating": templating() if variables is None else variables,
        "annotations": {"list": []},
        "panels": layout(panels),
    }
