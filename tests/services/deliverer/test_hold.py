"""Which Deliveries are held: a paused or disabled tenant's, a paused sending domain's; never
a DSN, never an active sender's (pure: a tenant table built in memory)."""

from __future__ import annotations

from typing import Any

from services.deliverer.hold import HELD_DOMAIN, HELD_TENANT, hold_reason
from shared.tenants import TenantTable
from shared.wire.records import Delivery, SendingDomain, Tenant, TenantState, TenantStatus
from shared.wire.topics import TENANTS

PAUSED = TenantStatus(state=TenantState.PAUSED, by="reputation", why="bounce rate 12%")


def delivery(tenant: str, sender: str, **fields: Any) -> Delivery:
    return Delivery(
        message_id="m",
        delivery_id="d",
        domain="dest.test",
        mail_from="",
        rcpt_to=("x@dest.test",),
        data=b"",
        tenant=tenant,
        sender=sender,
        **fields,
    )


def table() -> TenantTable:
    tenants = TenantTable()
    for tenant in (
        Tenant(id="paused", status=PAUSED, domains=(SendingDomain(name="p.test"),)),
        Tenant(id="gone", status=TenantStatus(state=TenantState.DISABLED)),
        Tenant(
            id="acme",
            domains=(
                SendingDomain(name="news.acme.test", status=PAUSED),
                SendingDomain(name="acme.test"),
            ),
        ),
    ):
        tenants.apply(TENANTS.key(tenant), TENANTS.encode(tenant))
    return tenants


def test_paused_and_disabled_tenants_are_held() -> None:
    tenants = table()
    assert hold_reason(delivery("paused", "a@p.test"), tenants) == HELD_TENANT
    assert hold_reason(delivery("gone", "a@gone.test"), tenants) == HELD_TENANT


def test_a_paused_sending_domain_is_held_alone() -> None:
    tenants = table()
    assert hold_reason(delivery("acme", "a@News.Acme.Test"), tenants) == HELD_DOMAIN
    assert hold_reason(delivery("acme", "a@acme.test"), tenants) == ""
    assert hold_reason(delivery("acme", ""), tenants) == ""


def test_dsns_unknown_and_default_tenants_are_not_held() -> None:
    tenants = table()
    assert hold_reason(delivery("paused", "", is_dsn=True), tenants) == ""
    assert hold_reason(delivery("nobody", "a@x.test"), tenants) == ""
    assert hold_reason(delivery("", "a@x.test"), tenants) == ""
