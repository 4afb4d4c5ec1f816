"""Pausing a tenant or one of its sending domains, inside the stage's own transaction.

Owns turning the engine's pauses into the tenant records to publish: the tenant's current
record (read from ``postline.tenants`` now, for its latest revision) with the state set by
``shared.tenant_admin`` (``by = "reputation"``, ``why`` naming the figures), plus its audit
event. The batch loop publishes them in the same transaction as the counts and the offsets,
so the pause happens exactly once with the decision that caused it: a crash before the
commit redoes both, after it neither (no second write to make idempotent, nothing to
re-ensure at start). An operator's change made between the read and the commit is
overwritten, as between two admins (``shared.tenant_admin``); pauses are rare and the
window is one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.reputation.engine import Pause
from shared import tenant_admin
from shared.bus.base import Bus
from shared.reputation import BY
from shared.wire.records import TenantState
from shared.wire.topics import OutRecord


async def pause_records(bus: Bus, pauses: Sequence[Pause], at: float) -> list[OutRecord]:
    """The tenant records and audit events that apply ``pauses`` (``at``: the wall time the
    statuses carry); a tenant removed meanwhile, or already paused, gives none."""
    if not pauses:
        return []
    tenants = await tenant_admin.read_all(bus)
    out: list[OutRecord] = []
    for pause in pauses:
        current = tenants.get(pause.tenant)
        if current is None:
            continue
        if pause.domain:
            change = tenant_admin.domain_state_change(
                pause.domain, TenantState.PAUSED, by=BY, why=pause.why, at=at
            )
            detail = (
                f"domain {pause.domain} {tenant_admin.state_detail(TenantState.PAUSED, pause.why)}"
            )
        else:
            change = tenant_admin.state_change(TenantState.PAUSED, by=BY, why=pause.why, at=at)
            detail = tenant_admin.state_detail(TenantState.PAUSED, pause.why)
        after, records = tenant_admin.staged_change(current, change, by=BY, detail=detail, at=at)
        tenants[pause.tenant] = after  # a second pause of the tenant builds on this one
        out += records
    return out
