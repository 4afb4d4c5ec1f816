"""Which endpoints an event goes to: kinds, and events that carry no tenant of their own."""

from __future__ import annotations

from services.webhooks.endpoints import Endpoints, MessageTenants
from shared.tenants import TenantTable
from shared.wire.records import Event, EventKind, Tenant, WebhookEndpoint
from shared.wire.topics import TENANTS

MSG = "ab" * 16


def _endpoint(ident: str, kinds: tuple[str, ...] = ()) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=ident, url="https://hooks.example/", sealed_secret=b"x", created_at=1.0, kinds=kinds
    )


def _table(*tenants: Tenant) -> TenantTable:
    table = TenantTable()
    for tenant in tenants:
        table.apply(tenant.id.encode(), TENANTS.encode(tenant))
    return table


def _event(kind: EventKind, tenant: str = "", message_id: str = MSG) -> Event:
    return Event(kind=kind, at=1.0, message_id=message_id, tenant=tenant)


def _endpoints(capacity: int = 10) -> tuple[Endpoints, list[Event]]:
    unattributed: list[Event] = []
    table = _table(
        Tenant(id="acme", webhooks=(_endpoint("wh_a"), _endpoint("wh_b", ("bounced",)))),
        Tenant(id="default", webhooks=(_endpoint("wh_d"),)),
    )
    return Endpoints(
        table, None, remember_messages=capacity, unattributed=unattributed.append
    ), unattributed


def _ids(endpoints: Endpoints, event: Event) -> list[tuple[str, str]]:
    return [(t.tenant, t.endpoint.id) for t in endpoints.targets(event)]


def test_kinds_filter_and_operator_events_go_nowhere() -> None:
    endpoints, _ = _endpoints()
    assert _ids(endpoints, _event(EventKind.DELIVERED, "acme")) == [("acme", "wh_a")]
    assert _ids(endpoints, _event(EventKind.BOUNCED, "acme")) == [
        ("acme", "wh_a"),
        ("acme", "wh_b"),
    ]
    assert _ids(endpoints, _event(EventKind.THROTTLED, "acme")) == []
    assert _ids(endpoints, _event(EventKind.TENANT_CHANGED, "acme")) == []


def test_an_event_without_tenant_goes_to_its_messages_tenant_never_to_default() -> None:
    endpoints, unattributed = _endpoints()
    assert _ids(endpoints, _event(EventKind.ACCEPTED, "acme")) == [("acme", "wh_a")]
    # The bouncer's DSN at the global bounce domain: no tenant on the event itself.
    assert _ids(endpoints, _event(EventKind.BOUNCED)) == [("acme", "wh_a"), ("acme", "wh_b")]
    assert unattributed == []


def test_an_event_without_tenant_of_an_unknown_message_reaches_no_one_and_is_counted() -> None:
    endpoints, unattributed = _endpoints()
    event = _event(EventKind.UNSUBSCRIBED, message_id="cd" * 16)
    assert _ids(endpoints, event) == []
    assert unattributed == [event]


def test_the_default_tenants_own_events_still_reach_it() -> None:
    endpoints, _ = _endpoints()
    assert _ids(endpoints, _event(EventKind.DELIVERED, "default")) == [("default", "wh_d")]


def test_the_memory_forgets_the_least_recently_seen_message_first() -> None:
    memory = MessageTenants(2)
    first, second, third = ("01" * 16, "02" * 16, "03" * 16)
    memory.tenant_of(_event(EventKind.ACCEPTED, "a", first))
    memory.tenant_of(_event(EventKind.ACCEPTED, "b", second))
    memory.tenant_of(_event(EventKind.DELIVERED, "a", first))  # seen again: kept
    memory.tenant_of(_event(EventKind.ACCEPTED, "c", third))
    assert len(memory) == 2
    assert memory.tenant_of(_event(EventKind.BOUNCED, "", first)) == "a"
    assert memory.tenant_of(_event(EventKind.BOUNCED, "", second)) == ""
    assert memory.tenant_of(_event(EventKind.BOUNCED, "", third)) == "c"
