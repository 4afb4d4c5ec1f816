"""Changing tenants' webhook endpoints: add, change, remove, pause, resume.

Endpoints live on the tenant record (``Tenant.webhooks`` on ``postline.tenants``), so every
change is a tenant change with its ``tenant_changed`` audit event
(``shared.tenant_admin.staged_change``: the record, the audit event and, for a pause or a
resume, a ``webhook`` event are one atomic publish). A new endpoint's secret is made here,
sealed under the KEK bound to the tenant and endpoint id (``shared.sealing``), and returned
once: it is never stored in the clear.

Used by ``postline webhooks`` (``cli.py``) and by the stage when it pauses a failing
endpoint (with ``by="webhooks"``). Does not parse command lines.
"""

from __future__ import annotations

import secrets

import msgspec

from services.webhooks.signing import new_secret
from shared import netguard, tenant_admin
from shared.bus.base import Bus
from shared.errors import UrlInvalid, UrlRefused, WebhookInvalid, WebhookNotFound, WebhookRefused
from shared.netguard import Policy
from shared.sealing import KeyRing, webhook_associated_data
from shared.wire.eventjson import TENANT_KINDS
from shared.wire.records import (
    Event,
    EventKind,
    Tenant,
    TenantState,
    TenantStatus,
    WebhookEndpoint,
    now,
)
from shared.wire.topics import EVENTS, OutRecord

MAX_BATCH = 1000
MAX_ENDPOINTS = 20  # per tenant: each one is a copy of every event


def new_endpoint_id() -> str:
    """``wh_`` + 12 hex digits."""
    return "wh_" + secrets.token_hex(6)


def check_endpoint_url(url: str, policy: Policy) -> None:
    """The SSRF rules (``shared.netguard``), failing as a webhook operation does."""
    try:
        netguard.check_url(url, policy)
    except UrlInvalid as exc:
        raise WebhookInvalid(f"a webhook URL: {exc}") from exc
    except UrlRefused as exc:
        raise WebhookRefused(str(exc)) from exc


def check_kinds(kinds: list[str]) -> tuple[str, ...]:
    """The kinds, checked against the kinds tenants may receive."""
    allowed = {str(k) for k in TENANT_KINDS}
    unknown = sorted(set(kinds) - allowed)
    if unknown:
        raise WebhookInvalid(
            f"unknown event kinds {', '.join(unknown)} (one of {', '.join(sorted(allowed))})"
        )
    return tuple(dict.fromkeys(kinds))


def find(tenant: Tenant, endpoint_id: str) -> WebhookEndpoint:
    """The endpoint ``endpoint_id`` of ``tenant``; :class:`WebhookNotFound` otherwise."""
    for endpoint in tenant.webhooks:
        if endpoint.id == endpoint_id:
            return endpoint
    raise WebhookNotFound(f"tenant {tenant.id!r} has no webhook endpoint {endpoint_id!r}")


def webhook_event(
    tenant: str, endpoint: str, classification: str, *, by: str, why: str
) -> OutRecord:
    """A ``webhook`` event about an endpoint (keyed by tenant, like its audit events)."""
    event = Event(
        kind=EventKind.WEBHOOK,
        at=now(),
        tenant=tenant,
        classification=classification,
        detail=f"{endpoint}: {why}" if why else endpoint,
        by=by,
        stage="webhooks",
    )
    return OutRecord(EVENTS.name, tenant.encode(), EVENTS.encode(event))


async def _publish(
    bus: Bus, before: Tenant, after: Tenant, *, by: str, detail: str, extra: list[OutRecord]
) -> Tenant:
    new, records = tenant_admin.staged_change(
        before, lambda _: after, by=by, detail=detail, at=now()
    )
    if records:
        await bus.publish([*records, *extra])
    return new


async def add(
    bus: Bus,
    keyring: KeyRing,
    tenant_id: str,
    url: str,
    *,
    policy: Policy,
    kinds: list[str] | None = None,
    batch: int = 1,
    description: str = "",
    by: str,
) -> tuple[WebhookEndpoint, str]:
    """Add an endpoint; returns it and its secret (``whsec_...``, shown once)."""
    check_endpoint_url(url, policy)
    if not 1 <= batch <= MAX_BATCH:
        raise WebhookInvalid(f"batch must be between 1 and {MAX_BATCH}, got {batch}")
    tenant = await tenant_admin.get(bus, tenant_id)
    if len(tenant.webhooks) >= MAX_ENDPOINTS:
        raise WebhookInvalid(f"tenant {tenant_id!r} has {MAX_ENDPOINTS} endpoints already")
    endpoint_id = new_endpoint_id()
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        url=url,
        sealed_secret=keyring.seal(
            secret.encode(), webhook_associated_data(tenant.id, endpoint_id)
        ),
        created_at=now(),
        kinds=check_kinds(kinds or []),
        batch=batch,
        description=description,
    )
    after = msgspec.structs.replace(tenant, webhooks=(*tenant.webhooks, endpoint))
    await _publish(bus, tenant, after, by=by, detail=f"webhook add {endpoint_id}", extra=[])
    return endpoint, secret


async def change(
    bus: Bus,
    tenant_id: str,
    endpoint_id: str,
    *,
    policy: Policy,
    by: str,
    url: str | None = None,
    kinds: list[str] | None = None,
    batch: int | None = None,
    description: str | None = None,
) -> WebhookEndpoint:
    """Change an endpoint's URL, kinds (``[]``: every tenant kind), batch or description;
    its id and secret stay. Returns it as it is now."""
    tenant = await tenant_admin.get(bus, tenant_id)
    endpoint = find(tenant, endpoint_id)
    fields: dict[str, object] = {}
    if url is not None:
        check_endpoint_url(url, policy)
        fields["url"] = url
    if kinds is not None:
        fields["kinds"] = check_kinds(kinds)
    if batch is not None:
        if not 1 <= batch <= MAX_BATCH:
            raise WebhookInvalid(f"batch must be between 1 and {MAX_BATCH}, got {batch}")
        fields["batch"] = batch
    if description is not None:
        fields["description"] = description
    changed = msgspec.structs.replace(endpoint, **fields)
    after = msgspec.structs.replace(
        tenant, webhooks=tuple(changed if e.id == endpoint_id else e for e in tenant.webhooks)
    )
    await _publish(bus, tenant, after, by=by, detail=f"webhook set {endpoint_id}", extra=[])
    return changed


async def remove(bus: Bus, tenant_id: str, endpoint_id: str, *, by: str) -> None:
    """Remove an endpoint (its waiting retries are dropped when they fall due)."""
    tenant = await tenant_admin.get(bus, tenant_id)
    find(tenant, endpoint_id)
    after = msgspec.structs.replace(
        tenant, webhooks=tuple(e for e in tenant.webhooks if e.id != endpoint_id)
    )
    await _publish(bus, tenant, after, by=by, detail=f"webhook remove {endpoint_id}", extra=[])


def with_state(
    tenant: Tenant, endpoint_id: str, state: TenantState, *, by: str, why: str
) -> Tenant:
    """``tenant`` with the endpoint's state set (unchanged when it is in that state)."""
    endpoint = find(tenant, endpoint_id)
    if endpoint.status.state is state:
        return tenant
    status = TenantStatus(state=state, by=by, why=why, at=now())
    return msgspec.structs.replace(
        tenant,
        webhooks=tuple(
            msgspec.structs.replace(e, status=status) if e.id == endpoint_id else e
            for e in tenant.webhooks
        ),
    )


async def set_state(
    bus: Bus,
    tenant: Tenant,
    endpoint_id: str,
    state: TenantState,
    *,
    by: str,
    why: str,
) -> bool:
    """Pause or resume an endpoint of ``tenant`` (the record as the caller read it), with
    its ``webhook`` event; ``False`` when it was in that state already."""
    after = with_state(tenant, endpoint_id, state, by=by, why=why)
    if after == tenant:
        return False
    classification = "resumed" if state is TenantState.ACTIVE else "paused"
    extra = [webhook_event(tenant.id, endpoint_id, classification, by=by, why=why)]
    detail = f"webhook {classification} {endpoint_id}: {why}"
    await _publish(bus, tenant, after, by=by, detail=detail, extra=extra)
    return True
