"""The sensor sets the gauges from committed records: provider rates over every tenant,
levels, per-tenant rates only when opted in, warm-up series only for warming addresses."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.reputation.metrics import ReputationMetrics, ReputationSensor
from shared.pools import PoolAddress, WarmupConfig
from shared.reputation import DAY
from shared.wire.records import (
    Event,
    EventKind,
    Reputation,
    ReputationBucket,
    ReputationCounts,
    WarmupState,
)

T0 = 1_780_000_000.0
DAY0 = int(T0 // DAY)
WARMING = {"192.0.2.10": PoolAddress(address="192.0.2.10", warmup=True)}


def counts(sent: int, hard: int = 0, complaints: int = 0) -> tuple[ReputationBucket, ...]:
    return (
        ReputationBucket(
            hour=1,
            counts=ReputationCounts(
                sent=sent, delivered=sent - hard, hard_bounces=hard, complaints=complaints
            ),
        ),
    )


RECORDS = [
    Reputation(key="tenant|a", scope="tenant", tenant="a", buckets=counts(100, 20), level="paused"),
    Reputation(key="tenant|b", scope="tenant", tenant="b", buckets=counts(100), level="warning"),
    Reputation(key="provider|a|google", scope="provider", tenant="a", provider="google",
               buckets=counts(100, 20)),
    Reputation(key="provider|b|google", scope="provider", tenant="b", provider="google",
               buckets=counts(100, 0, complaints=2)),
    Reputation(key="address|192.0.2.10|google", scope="address", address="192.0.2.10",
               provider="google", warmup=WarmupState(step=2, day=DAY0, allowance=500, sent=7,
                                                     started_day=DAY0 - 9, changed_at=0.0)),
    Reputation(key="address|192.0.2.99|google", scope="address", address="192.0.2.99",
               provider="google", warmup=WarmupState(step=1, day=DAY0)),
]  # fmt: skip


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def sensor(registry: CollectorRegistry, tenant_label: bool) -> ReputationSensor:
    return ReputationSensor(
        ReputationMetrics(registry),
        tenant_label=tenant_label,
        warming=WARMING,
        warmup=WarmupConfig(),
        clock=lambda: 0.0,
    )


def test_gauges_from_records() -> None:
    registry = CollectorRegistry()
    sensor(registry, tenant_label=False).refresh(RECORDS, T0)
    ratio = "postline_reputation_provider_ratio"
    assert sample(registry, ratio, provider="google", rate="bounce") == 20 / 200
    assert sample(registry, ratio, provider="google", rate="complaint") == 2 / 180
    scopes = "postline_reputation_scopes"
    assert sample(registry, scopes, scope="tenant", level="paused") == 1
    assert sample(registry, scopes, scope="tenant", level="warning") == 1
    assert sample(registry, scopes, scope="domain", level="paused") == 0
    assert sample(registry, "postline_reputation_tenant_ratio", tenant="a", rate="bounce") is None
    warm = {"source": "192.0.2.10", "provider": "google"}
    assert sample(registry, "postline_warmup_step", **warm) == 2
    assert sample(registry, "postline_warmup_day", **warm) == 10
    assert sample(registry, "postline_warmup_allowance", **warm) == 500
    assert sample(registry, "postline_warmup_sent_today", **warm) == 7
    assert sample(registry, "postline_warmup_stuck", **warm) == 1  # last advanced long ago
    # An address no longer warming in [pools] has no series.
    assert sample(registry, "postline_warmup_step", source="192.0.2.99", provider="google") is None


def test_per_tenant_rates_only_when_opted_in_and_decisions_counted() -> None:
    registry = CollectorRegistry()
    opted = sensor(registry, tenant_label=True)
    opted.refresh(RECORDS, T0)
    assert sample(registry, "postline_reputation_tenant_ratio", tenant="a", rate="bounce") == 0.2
    opted.decided(
        [Event(kind=EventKind.REPUTATION, at=T0, scope="tenant", classification="paused")] * 2
    )
    total = "postline_reputation_decisions_total"
    assert sample(registry, total, scope="tenant", classification="paused") == 2


def test_refresh_is_throttled_unless_forced() -> None:
    registry = CollectorRegistry()
    ticks = iter([0.0, 1.0, 2.0])
    throttled = ReputationSensor(
        ReputationMetrics(registry),
        tenant_label=False,
        warming=WARMING,
        warmup=WarmupConfig(),
        clock=lambda: next(ticks),
    )
    throttled.refresh(RECORDS[:1], T0)
    throttled.refresh(RECORDS[:2], T0)  # one second later: skipped
    scopes = "postline_reputation_scopes"
    assert sample(registry, scopes, scope="tenant", level="warning") == 0
    throttled.refresh(RECORDS[:2], T0, force=True)
    assert sample(registry, scopes, scope="tenant", level="warning") == 1
