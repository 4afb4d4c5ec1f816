"""The reputation stage's metrics, and the sensor that sets them from committed state.

Labels are bounded: ``provider`` (``shared.providers`` names), ``rate`` (bounce, complaint,
block), ``scope`` (tenant, domain, provider, address), ``classification`` (the decisions),
``source`` (a warming source address: the operator's ``[pools]`` list), ``signal`` (what
rose when a credential was held: ``credentials.py``) and ``tenant`` only
with ``[metrics] tenant_label`` (one series per tenant and rate: the operator's opt-in, as
for ``postline_tenant_messages_total``). Sending domains and credentials are never a label.

The sensor is called after a batch committed: gauges then show what is on
``postline.reputation``, never a batch that may still be discarded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.pools import PoolAddress, WarmupConfig
from shared.reputation import (
    LEVEL_PAUSED,
    LEVEL_WARNING,
    SCOPE_ADDRESS,
    SCOPE_CREDENTIAL,
    SCOPE_DOMAIN,
    SCOPE_PROVIDER,
    SCOPE_TENANT,
    Rates,
    day_of,
    plus,
    sent_today,
    stuck,
    total,
)
from shared.wire.records import Event, Reputation, ReputationCounts

#: At most one full refresh of the gauges per this many seconds (they read every record).
REFRESH_INTERVAL = 10.0


class ReputationMetrics:
    """Every reputation metric, registered on the registry passed in (no global state)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.provider_rates = Gauge(
            "postline_reputation_provider_ratio",
            "Rates over the reputation window with each provider, all tenants together: "
            "bounce (hard bounces / sent), complaint (complaints / delivered), block (policy "
            "rejections / sent). Gmail and Yahoo require bulk senders to stay under 0.003 "
            "complaints; a rising block rate means the provider distrusts our addresses.",
            ["provider", "rate"],
            registry=registry,
        )
        self.tenant_rates = Gauge(
            "postline_reputation_tenant_ratio",
            "A tenant's rates over the reputation window (only with metrics.tenant_label): "
            "compare with [reputation] bounce/complaint/block levels; postline reputation "
            "TENANT shows the counts.",
            ["tenant", "rate"],
            registry=registry,
        )
        self.levels = Gauge(
            "postline_reputation_scopes",
            "Tenants, sending domains and tenant-provider pairs by level (warning, paused). "
            "A paused tenant or domain sends nothing until an operator resumes it "
            "(postline tenant resume / tenant domain resume).",
            ["scope", "level"],
            registry=registry,
        )
        self.decisions = Counter(
            "postline_reputation_decisions_total",
            "Reputation decisions by scope and classification (warning, paused, recovered, "
            "warmup_advanced, warmup_held, warmup_stepped_back); each is also a reputation "
            "event on postline.events with the figures behind it.",
            ["scope", "classification"],
            registry=registry,
        )
        self.credentials_held = Gauge(
            "postline_reputation_credentials_held",
            "Credentials (AUTH logins, API keys) held: ingest refuses their mail with 451 "
            "until an operator releases them (postline credential list / release). Held by "
            "the reputation stage for a sudden rise over their own baseline, or by an operator.",
            registry=registry,
        )
        self.credential_holds = Counter(
            "postline_reputation_credential_holds_total",
            "Credentials held by the reputation stage, by each signal that rose (volume, "
            "recipients_per_message, domains, spam, hard_bounces); the credential event on "
            "postline.events has the figures and the baseline.",
            ["signal"],
            registry=registry,
        )
        self.warmup_step = Gauge(
            "postline_warmup_step",
            "Step in the warm-up schedule of a warming source address with a provider "
            "(0 is the first; past the last the address is warm).",
            ["source", "provider"],
            registry=registry,
        )
        self.warmup_day = Gauge(
            "postline_warmup_day",
            "Day of warm-up of a source address with a provider (1 on its first day).",
            ["source", "provider"],
            registry=registry,
        )
        self.warmup_allowance = Gauge(
            "postline_warmup_allowance",
            "Messages a warming source address may send a provider today (0: warm, no "
            "limit). Mail past it waits or overflows per the pool's over_allowance.",
            ["source", "provider"],
            registry=registry,
        )
        self.warmup_sent = Gauge(
            "postline_warmup_sent_today",
            "Attempts a warming source address made to a provider today (UTC, event time).",
            ["source", "provider"],
            registry=registry,
        )
        self.warmup_stuck = Gauge(
            "postline_warmup_stuck",
            "1 when a warming source address has not advanced with a provider for "
            "[pools.warmup] stuck_after_days: too little volume, or bounces, complaints or "
            "deferrals over the advance levels. Check postline pool status.",
            ["source", "provider"],
            registry=registry,
        )


class ReputationSensor:
    """Sets the metrics from the stage's committed records."""

    def __init__(
        self,
        metrics: ReputationMetrics,
        *,
        tenant_label: bool,
        warming: Mapping[str, PoolAddress],
        warmup: WarmupConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._tenant_label = tenant_label
        self._warming = warming
        self._warmup = warmup
        self._clock = clock
        self._refreshed: float | None = None

    def decided(self, decisions: Sequence[Event]) -> None:
        """Count committed decisions."""
        for event in decisions:
            self._metrics.decisions.labels(event.scope, event.classification).inc()

    def held(self, signals: Sequence[str]) -> None:
        """Count a committed credential hold by the signals that rose."""
        for signal in signals:
            self._metrics.credential_holds.labels(signal).inc()

    def refresh(self, records: Iterable[Reputation], now: float, force: bool = False) -> None:
        """Set every gauge from ``records`` (at most once per :data:`REFRESH_INTERVAL`
        unless ``force``); ``now`` is the stage clock (event time) for "today"."""
        tick = self._clock()
        if not force and self._refreshed is not None and tick - self._refreshed < REFRESH_INTERVAL:
            return
        self._refreshed = tick
        providers: dict[str, ReputationCounts] = {}
        levels = {
            (scope, level): 0
            for scope in (SCOPE_TENANT, SCOPE_DOMAIN, SCOPE_PROVIDER)
            for level in (LEVEL_WARNING, LEVEL_PAUSED)
        }
        tenant_rates: dict[str, Rates] = {}
        warmups: list[Reputation] = []
        held = 0
        for record in records:
            if record.scope == SCOPE_ADDRESS:
                warmups.append(record)
                continue
            if record.scope == SCOPE_CREDENTIAL:
                held += record.credential is not None and record.credential.held
                continue
            if (record.scope, record.level) in levels:
                levels[(record.scope, record.level)] += 1
            if record.scope == SCOPE_PROVIDER:
                counts = providers.get(record.provider, ReputationCounts())
                providers[record.provider] = plus(counts, total(record.buckets))
            elif record.scope == SCOPE_TENANT and self._tenant_label:
                tenant_rates[record.tenant] = Rates.of(total(record.buckets))
        for (scope, level), count in levels.items():
            self._metrics.levels.labels(scope, level).set(count)
        self._metrics.credentials_held.set(held)
        self._set_rates(
            self._metrics.provider_rates, {p: Rates.of(c) for p, c in providers.items()}
        )
        if self._tenant_label:
            self._set_rates(self._metrics.tenant_rates, tenant_rates)
        self._set_warmups(warmups, day_of(now))

    @staticmethod
    def _set_rates(gauge: Gauge, rates: Mapping[str, Rates]) -> None:
        gauge.clear()  # a tenant or provider gone from the window leaves no stale series
        for name, value in rates.items():
            gauge.labels(name, "bounce").set(value.bounce)
            gauge.labels(name, "complaint").set(value.complaint)
            gauge.labels(name, "block").set(value.block)

    def _set_warmups(self, records: Sequence[Reputation], today: int) -> None:
        metrics = self._metrics
        for gauge in (
            metrics.warmup_step,
            metrics.warmup_day,
            metrics.warmup_allowance,
            metrics.warmup_sent,
            metrics.warmup_stuck,
        ):
            gauge.clear()
        for record in records:
            state = record.warmup
            if state is None or record.address not in self._warming:
                continue  # no longer warming in [pools]: the label set stays bounded
            labels = (record.address, record.provider)
            metrics.warmup_step.labels(*labels).set(state.step)
            metrics.warmup_day.labels(*labels).set(max(today, state.day) - state.started_day + 1)
            metrics.warmup_allowance.labels(*labels).set(state.allowance)
            metrics.warmup_sent.labels(*labels).set(sent_today(state, today))
            is_stuck = stuck(state, today, self._warmup.stuck_after_days)
            metrics.warmup_stuck.labels(*labels).set(1 if is_stuck else 0)
