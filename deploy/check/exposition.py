"""The Prometheus exposition text the real services produce, for linting dashboards and rules.

Builds one ``CollectorRegistry`` with :class:`shared.runtime.metrics.CoreMetrics`, the
limiter's :class:`shared.limits.metrics.LimitsMetrics` (shared, not a stage's) and every
installed stage's metrics class (``services/<stage>/metrics.py``, found through the
``postline.stages`` entry points, so a new stage is picked up), gives each labelled metric one
example child so every sample name (``_total``, ``_bucket``/``_sum``/``_count``, ``_info``)
appears, and renders it with ``prometheus_client.generate_latest``. Owns nothing the services
use. Run: ``python deploy/check/exposition.py`` (prints the text).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from shared.limits.metrics import LimitsMetrics
from shared.runtime.metrics import CoreMetrics

#: The entry point group stages register under (pyproject.toml).
STAGES_GROUP = "postline.stages"


@dataclass(frozen=True)
class Family:
    """One exported metric family: its name, type, help text and sample names."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...]
    samples: frozenset[str]
    owner: str  # the class that declares it (CoreMetrics, IngestMetrics, ...)


def stage_metric_classes() -> list[type]:
    """Every ``*Metrics`` class declared in an installed stage's ``metrics`` module."""
    classes: list[type] = []
    for stage in sorted(entry.name for entry in entry_points(group=STAGES_GROUP)):
        module = importlib.import_module(f"services.{stage}.metrics")
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if name.endswith("Metrics") and obj.__module__ == module.__name__:
                classes.append(obj)
    return classes


def build_registry() -> tuple[CollectorRegistry, dict[str, str]]:
    """A registry with every metric, each labelled metric given one example child.

    Returns the registry and a map from metric family name to the class declaring it.
    """
    registry = CollectorRegistry()
    owners: dict[str, str] = {}
    for cls in [CoreMetrics, LimitsMetrics, *stage_metric_classes()]:
        holder = cls(registry)
        for metric in vars(holder).values():
            if isinstance(metric, MetricWrapperBase):
                owners[metric._name] = cls.__name__  # no public accessor
                _add_example_child(metric)
    return registry, owners


def _add_example_child(metric: MetricWrapperBase) -> None:
    names = metric._labelnames
    if names:
        metric.labels(**{name: "example" for name in names})


def families() -> list[Family]:
    """Every exported family with its samples, in registry order."""
    registry, owners = build_registry()
    result: list[Family] = []
    for family in registry.collect():
        samples = frozenset(sample.name for sample in family.samples)
        labels = sorted({k for s in family.samples for k in s.labels if k not in ("le",)})
        owner = owners.get(family.name) or owners.get(family.name + "_total", "")
        result.append(
            Family(family.name, family.type, family.documentation, tuple(labels), samples, owner)
        )
    return result


def exposition_text() -> str:
    """The text format a scrape of a process running every stage returns."""
    registry, _ = build_registry()
    return generate_latest(registry).decode()


def main() -> int:
    """Print the exposition text."""
    sys.stdout.write(exposition_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
