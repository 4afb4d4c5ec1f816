"""Whether a Delivery's sender may send now, or its mail is held until it is resumed.

Owns: :func:`hold_reason`: a Delivery whose tenant is paused or disabled, or whose sending
domain (the domain of the original envelope sender, in that tenant's record) is paused, is
held: the engine moves it to a retry tier for ``deliverer.paused_hold`` without an attempt, so
it is neither sent nor lost; it goes out after ``postline tenant resume`` (or the reputation
stage's recovery) at its next pass, or expires at its maximum age with the usual EXPIRED
event and DSN, as SES holds a paused account's mail. Ingest already refuses new mail of a
paused sender; this covers what was queued before the pause.

DSNs are never held: they are the installation's mail (null sender, the bounce domain's
reputation), telling the tenant's own sender what failed.
Does not publish or schedule anything (``engine.py`` and ``report.py`` do).
"""

from __future__ import annotations

from shared.tenants import TenantTable
from shared.wire.records import Delivery, SendingDomain, Tenant, TenantState

HELD_TENANT = "paused_tenant"
HELD_DOMAIN = "paused_domain"


def sending_domain_of(tenant: Tenant | None, sender: str) -> SendingDomain | None:
    """The sending domain of ``tenant`` that ``sender`` (an address) is from, if any."""
    if tenant is None or "@" not in sender:
        return None
    name = sender.rpartition("@")[2].lower().rstrip(".")
    return next((domain for domain in tenant.domains if domain.name == name), None)


def hold_reason(delivery: Delivery, tenants: TenantTable) -> str:
    """``HELD_TENANT`` or ``HELD_DOMAIN`` when the Delivery must wait, else ``""``."""
    if delivery.is_dsn:
        return ""
    tenant = tenants.get(delivery.tenant)
    if tenant is None:
        return ""  # removed or not yet known here: not paused (ingest decided at intake)
    if tenant.status.state is not TenantState.ACTIVE:
        return HELD_TENANT
    domain = sending_domain_of(tenant, delivery.sender)
    if domain is not None and domain.status.state is not TenantState.ACTIVE:
        return HELD_DOMAIN
    return ""
