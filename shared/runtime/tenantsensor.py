"""Per-tenant message counts, only where the operator opted in (``metrics.tenant_label``).

A stage's business code calls ``sensor.count(tenant, result)``; whether that makes a series
is decided here, once. The counter itself is ``CoreMetrics.tenant_messages``
(``postline_tenant_messages_total{tenant,stage,result}``), never a label added to a stage's
own metrics: their label sets stay fixed, so dashboards and alerts keep working whatever the
setting. Off, nothing is exported; on, it costs one series per tenant per stage and result.
"""

from __future__ import annotations

from prometheus_client import Counter

from shared.runtime.stage import StageContext
from shared.wire.records import DEFAULT_TENANT


class TenantSensor:
    """Counts one stage's messages per tenant, or nothing when off."""

    def __init__(self, counter: Counter | None, stage: str) -> None:
        self._counter = counter
        self._stage = stage

    @classmethod
    def off(cls) -> TenantSensor:
        """A sensor that counts nothing (the default: ``metrics.tenant_label = false``)."""
        return cls(None, "")

    @property
    def enabled(self) -> bool:
        """Whether counts are exported."""
        return self._counter is not None

    def count(self, tenant: str, result: str, amount: int = 1) -> None:
        """Count ``amount`` messages of ``tenant`` ("" is the default tenant) with ``result``."""
        if self._counter is not None:
            label = tenant or DEFAULT_TENANT
            self._counter.labels(label, self._stage, result).inc(amount)


def tenant_sensor(ctx: StageContext) -> TenantSensor:
    """The sensor of ``ctx``'s stage: counting if ``metrics.tenant_label`` is on."""
    if not ctx.config.core.metrics.tenant_label:
        return TenantSensor.off()
    return TenantSensor(ctx.metrics.tenant_messages, ctx.name)
