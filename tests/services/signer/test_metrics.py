"""Every signer metric has help text; key gauges follow the key set."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.signer.keys import KeyStore
from services.signer.metrics import SignerMetrics


def test_every_metric_has_help_text() -> None:
    registry = CollectorRegistry()
    SignerMetrics(registry)
    families = list(registry.collect())
    assert families
    for family in families:
        assert family.name.startswith("postline_signer_")
        assert len(family.documentation) > 40, family.name


def test_key_gauges(store: KeyStore) -> None:
    registry = CollectorRegistry()
    metrics = SignerMetrics(registry)
    keys = store.all_keys()
    metrics.observe_keys(keys, now=keys[0].path.stat().st_mtime + 100)
    labels = {"signing_domain": "example.test", "selector": "r1", "algorithm": "rsa"}
    age = registry.get_sample_value("postline_signer_key_age_seconds", labels)
    assert age is not None and 99 <= age <= 101
    assert registry.get_sample_value("postline_signer_key_expiry_seconds", labels) is None
    metrics.observe_keys([])
    assert registry.get_sample_value("postline_signer_key_age_seconds", labels) is None
