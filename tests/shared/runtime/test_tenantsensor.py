"""The opt-in per-tenant counter: nothing exported when off, one series per tenant when on,
and the stages' own metrics keep their labels either way."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry

from services.deliverer.metrics import DelivererMetrics
from services.ingest.metrics import IngestMetrics
from shared.bus.embedded import EmbeddedBus
from shared.config import Config, CoreConfig, EmbeddedConfig, MetricsConfig
from shared.runtime.stage import StageContext
from shared.runtime.tenantsensor import tenant_sensor

NAME = "postline_tenant_messages_total"


def context(tenant_label: bool, name: str) -> StageContext:
    core = CoreConfig(embedded=EmbeddedConfig(), metrics=MetricsConfig(tenant_label=tenant_label))
    return StageContext(
        name=name,
        config=Config(core, "test.toml", {}),
        bus=EmbeddedBus(core.embedded),  # never started: the sensor does not use it
        registry=CollectorRegistry(),
        log=logging.getLogger("test"),
        stopping=asyncio.Event(),
        instance="test",
    )


def series(ctx: StageContext) -> dict[tuple[str, ...], float]:
    return {
        (s.labels["tenant"], s.labels["stage"], s.labels["result"]): s.value
        for family in ctx.registry.collect()
        for s in family.samples
        if s.name == NAME
    }


def test_off_exports_nothing() -> None:
    ctx = context(False, "ingest")
    sensor = tenant_sensor(ctx)
    sensor.count("acme", "accepted")
    assert not sensor.enabled
    assert series(ctx) == {}


def test_on_counts_per_tenant_and_stage() -> None:
    ctx = context(True, "deliverer")
    sensor = tenant_sensor(ctx)
    sensor.count("acme", "delivered")
    sensor.count("acme", "delivered")
    sensor.count("", "bounced", 3)  # "" is the default tenant (a writer from before tenants)
    assert series(ctx) == {
        ("acme", "deliverer", "delivered"): 2.0,
        ("default", "deliverer", "bounced"): 3.0,
    }


def test_stage_metrics_keep_their_labels() -> None:
    on = context(True, "ingest")
    ingest = IngestMetrics(on.registry, tenant_sensor(on))
    deliverer = DelivererMetrics(CollectorRegistry())
    assert ingest.messages._labelnames == ("result", "check")
    assert deliverer.attempts._labelnames == ("provider", "result")
