"""The architecture, pinned by tests.

- the folder layout is the architecture: a stage never imports another stage, and
  shared/ never imports a stage (stages are found through entry points);
- every metric any process exports has help text, the postline_ prefix and base units
  (prometheus_client itself adds _total to counters), and no label that could carry a
  recipient domain or another unbounded value.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.bouncer.metrics import BouncerMetrics
from services.deliverer.metrics import DelivererMetrics
from services.ingest.metrics import IngestMetrics
from services.reputation.metrics import ReputationMetrics
from services.signer.metrics import SignerMetrics
from shared.runtime.metrics import CoreMetrics

ROOT = Path(__file__).resolve().parent.parent
STAGES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())

# Labels that could hold an unbounded, per-customer value (unbounded cardinality).
FORBIDDEN_LABELS = {"domain", "recipient", "address", "message_id", "sender", "user", "mx"}


def imported_modules(path: Path) -> set[str]:
    """Every module a Python file imports (absolute imports)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_there_are_seven_stages() -> None:
    assert STAGES == [
        "bouncer",
        "deliverer",
        "ingest",
        "reputation",
        "signer",
        "store",
        "webhooks",
    ]


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_never_imports_another_stage(stage: str) -> None:
    offenders = []
    for path in (ROOT / "services" / stage).rglob("*.py"):
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] == "services" and len(parts) > 1 and parts[1] != stage:
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not offenders, "\n".join(offenders)


def test_shared_never_imports_a_stage() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in (ROOT / "shared").rglob("*.py")
        for module in imported_modules(path)
        if module.split(".")[0] == "services"
    ]
    assert not offenders, "\n".join(offenders)


def exported_metrics() -> list:  # type: ignore[type-arg]
    """Every metric family the five stages and the runtime declare, on one registry."""
    registry = CollectorRegistry()
    CoreMetrics(registry)
    IngestMetrics(registry)
    SignerMetrics(registry)
    DelivererMetrics(registry)
    BouncerMetrics(registry)
    ReputationMetrics(registry)
    return list(registry.collect())


def test_every_metric_has_help_prefix_and_units() -> None:
    families = exported_metrics()
    assert len(families) > 30
    problems = []
    for family in families:
        name = family.name
        if not name.startswith("postline_"):
            problems.append(f"{name}: no postline_ prefix")
        if len(family.documentation.strip()) < 20:
            problems.append(f"{name}: help text missing or too short to guide an operator")
        if any(bad in name for bad in ("_milliseconds", "_ms", "_kb", "_mb", "_minutes")):
            problems.append(f"{name}: not in base units (seconds, bytes)")
    assert not problems, "\n".join(problems)


def test_declared_label_names_are_bounded() -> None:
    registry = CollectorRegistry()
    objects = [
        CoreMetrics(registry),
        IngestMetrics(registry),
        SignerMetrics(registry),
        DelivererMetrics(registry),
        BouncerMetrics(registry),
        ReputationMetrics(registry),
    ]
    problems = []
    for holder in objects:
        for attr, metric in vars(holder).items():
            labels = set(getattr(metric, "_labelnames", ()))
            bad = FORBIDDEN_LABELS & labels
            if bad:
                problems.append(f"{type(holder).__name__}.{attr}: label {sorted(bad)}")
    assert not problems, "\n".join(problems)
