"""Core metrics: declared once per registry, named by the conventions, all with help text."""

from __future__ import annotations

import platform
from importlib.metadata import version

import pytest
from prometheus_client import CollectorRegistry

from shared.errors import DecodeError, PoisonRecord
from shared.runtime.metrics import CoreMetrics, reason_class


def test_every_metric_is_prefixed_and_explained() -> None:
    registry = CollectorRegistry()
    CoreMetrics(registry)
    families = list(registry.collect())
    assert families
    for family in families:
        assert family.name.startswith("postline_")
        assert len(family.documentation) > 40, family.name  # tells an operator how to read it
        if family.type == "counter":
            assert any(s.name.endswith("_total") for s in family.samples) or not family.samples


def test_build_info_carries_versions() -> None:
    registry = CollectorRegistry()
    CoreMetrics(registry)
    labels = {
        "version": version("postline"),
        "python": platform.python_version(),
    }
    assert registry.get_sample_value("postline_build_info", labels) == 1.0


def test_registries_are_independent() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    a, b = CoreMetrics(first), CoreMetrics(second)
    a.records_consumed.labels("signer", "postline.submitted").inc(3)
    b.records_consumed.labels("signer", "postline.submitted").inc()
    labels = {"stage": "signer", "topic": "postline.submitted"}
    assert first.get_sample_value("postline_records_consumed_total", labels) == 3
    assert second.get_sample_value("postline_records_consumed_total", labels) == 1


def test_declaring_twice_on_one_registry_is_refused() -> None:
    registry = CollectorRegistry()
    CoreMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        CoreMetrics(registry)


def test_reason_classes_are_bounded() -> None:
    assert reason_class(DecodeError("x")) == "decode"
    assert reason_class(PoisonRecord("y")) == "poison"
    assert reason_class(KeyError("z")) == "failed"
