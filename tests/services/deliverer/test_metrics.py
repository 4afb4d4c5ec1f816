"""Every deliverer metric is declared with help text and bounded labels."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.deliverer.metrics import DelivererMetrics, reply_class


def test_every_metric_has_help_and_the_postline_prefix() -> None:
    registry = CollectorRegistry()
    DelivererMetrics(registry)
    families = list(registry.collect())
    assert len(families) >= 12
    for family in families:
        assert family.name.startswith("postline_deliverer_")
        assert len(family.documentation) > 40, family.name


def test_no_label_can_hold_a_domain() -> None:
    registry = CollectorRegistry()
    metrics = DelivererMetrics(registry)
    allowed = {"provider", "result", "reply_class", "action", "reason", "tier", "lane"}
    allowed |= {"source", "pool"}  # local addresses and pool names: the config bounds them
    allowed |= {"verb", "kind"}  # control verbs and target kinds: closed enums
    allowed |= {"security", "verified"}  # transport security: closed enums
    for metric in vars(metrics).values():
        assert set(getattr(metric, "_labelnames", ())) <= allowed


def test_reply_class() -> None:
    assert [reply_class(c) for c in (250, 421, 550, None, 99)] == [
        "2xx",
        "4xx",
        "5xx",
        "none",
        "none",
    ]
