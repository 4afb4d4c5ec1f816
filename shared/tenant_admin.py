"""Changing tenants: the operations behind ``postline tenant ...`` and the admin HTTP API.

Every change goes through :func:`update` (or, for add and remove, the same commit step): read
the tenant from ``postline.tenants``, apply a pure change, bump ``revision`` and
``updated_at``, and publish the new record together with a ``tenant_changed`` event (who,
what, the record before and after) in one atomic ``Bus.publish``, so the audit trail never
misses a change nor tells of one that did not happen. A change that changes nothing publishes
nothing (pausing a paused tenant), which makes every operation safe to retry.

Concurrency: two admins changing one tenant at once is last-writer-wins, narrowed by a
revision check: the tenant is read again right before publishing, and when its revision
moved the change is refused with :class:`TenantChangedMeanwhile` (retry). The window between
that read and the publish remains; the tools are for people, not for hot loops.

The reputation stage pauses a tenant or one of its sending domains inside its own consumer
transaction (exactly once with the counts that caused it): it takes the records of a change
from :func:`staged_change` and publishes them itself, with the same audit event.

The audit copies of the record leave out password hashes, API key hashes and sealed DKIM
keys: the events topic is read more widely than the tenants topic. Credentials and API keys
are changed through :func:`update` by ``shared.tenant_access``; field validation is
``shared.tenant_fields``'s, the live lookup table ``shared.tenants``'.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from shared import tenant_fields
from shared.bus.base import Bus
from shared.errors import TenantChangedMeanwhile, TenantConflict, TenantNotFound
from shared.tenants import IMPLICIT_DEFAULT
from shared.wire.eventjson import tenant_view
from shared.wire.records import (
    DEFAULT_TENANT,
    Event,
    EventKind,
    SendingDomain,
    Tenant,
    TenantState,
    TenantStatus,
    now,
)
from shared.wire.topics import EVENTS, TENANTS, OutRecord

#: A change: the current record in, the wanted record out (or raise a TenantError).
Change = Callable[[Tenant], Tenant]


async def read_all(bus: Bus) -> dict[str, Tenant]:
    """Every tenant with a record now, by id (the caller made sure the topic exists:
    :func:`ensure_topics`)."""
    table = await bus.read_table(TENANTS.name)
    return {key.decode(): TENANTS.decode(value) for key, value in table.items()}


async def ensure_topics(bus: Bus) -> None:
    """Create what tenant operations read and write, as declared, when missing: the first
    tenant command on a new cluster may come before `postline topics create` (the table,
    and the events for the audit trail). Once per command or stage start, not per read."""
    await bus.ensure_topics([TENANTS.name, EVENTS.name])


async def get(bus: Bus, tenant_id: str) -> Tenant:
    """The tenant ``tenant_id`` (the implicit ``default`` without a record);
    :class:`TenantNotFound` when there is none."""
    tenant = (await read_all(bus)).get(tenant_id)
    if tenant is None and tenant_id == DEFAULT_TENANT:
        return IMPLICIT_DEFAULT
    if tenant is None:
        raise TenantNotFound(f"no tenant {tenant_id!r}")
    return tenant


async def list_tenants(bus: Bus) -> list[Tenant]:
    """Every tenant with a record, by id."""
    return sorted((await read_all(bus)).values(), key=lambda t: t.id)


async def update(
    bus: Bus,
    tenant_id: str,
    change: Change,
    *,
    by: str,
    detail: str = "",
    timeout: float | None = None,
) -> Tenant:
    """Apply ``change`` to tenant ``tenant_id`` and publish it with its audit event.

    Returns the tenant as it is now: the new record, or the current one when ``change``
    changed nothing (then nothing is published). ``detail`` names the operation in the event
    (``"pause: <why>"``). A credential name or sending domain the change adds that another
    tenant owns is a :class:`TenantConflict` naming that tenant, for every caller alike.
    Raises :class:`TenantNotFound` for an unknown tenant (``default`` has no record to
    change), :class:`TenantChangedMeanwhile` when another admin changed it first.
    """
    tenants = await read_all(bus)
    before = tenants.get(tenant_id)
    if before is None:
        raise TenantNotFound(f"no tenant {tenant_id!r}")
    after = change(before)
    if after == before:
        return before
    _check_unique(tenants, before, after)
    after = _next_revision(before, after, now())
    await _commit(bus, before, after, by=by, detail=detail, timeout=timeout)
    return after


def staged_change(
    before: Tenant, change: Change, *, by: str, detail: str, at: float
) -> tuple[Tenant, list[OutRecord]]:
    """``change`` applied to ``before`` (the current record) without publishing: the new
    record and what to publish for it (the record and its audit event), or ``before`` and
    ``[]`` when nothing changes. For a writer that publishes in its own transaction; it
    must not add credentials or domains (the uniqueness check needs every tenant)."""
    after = change(before)
    if after == before:
        return before, []
    after = _next_revision(before, after, at)
    return after, _records(before, after, by=by, detail=detail, at=at)


def _next_revision(before: Tenant, after: Tenant, at: float) -> Tenant:
    return msgspec.structs.replace(
        after, id=before.id, revision=before.revision + 1, updated_at=max(at, before.updated_at)
    )


async def add(
    bus: Bus, tenant_id: str, *, name: str = "", by: str, timeout: float | None = None
) -> tuple[Tenant, bool]:
    """Add tenant ``tenant_id``; returns it and whether it was created. Adding a tenant that
    exists with the same name (or none given) changes nothing (a retry); with another name
    it is a :class:`TenantConflict`."""
    tenant_fields.tenant_id(tenant_id)
    name = tenant_fields.display_name(name)
    existing = (await read_all(bus)).get(tenant_id)
    if existing is not None:
        if name and name != existing.name:
            raise TenantConflict(
                f"tenant {tenant_id!r} exists with name {existing.name!r} (use tenant set)"
            )
        return existing, False
    at = now()
    tenant = Tenant(id=tenant_id, name=name, created_at=at, updated_at=at, revision=1)
    await _commit(bus, None, tenant, by=by, detail="add", timeout=timeout)
    return tenant, True


async def set_fields(
    bus: Bus,
    tenant_id: str,
    *,
    name: str | None = None,
    ip_pool: str | None = None,
    limits: Mapping[str, object] | None = None,
    settings: Mapping[str, object] | None = None,
    by: str,
) -> Tenant:
    """Change a tenant's name, IP pool, limits (field -> value, 0: none) and settings.
    Every value is checked before anything is published (:class:`TenantInvalid` names it)."""
    current = await get(bus, tenant_id)
    fields: dict[str, Any] = {}
    if name is not None:
        fields["name"] = tenant_fields.display_name(name)
    if ip_pool is not None:
        fields["ip_pool"] = tenant_fields.ip_pool(ip_pool)
    if limits:
        fields["limits"] = tenant_fields.limits(current.limits, limits)
    if settings:
        fields["settings"] = tenant_fields.settings(current.settings, settings)
    what = ", ".join(sorted([*fields.keys() - {"limits", "settings"}, *_keys(limits, settings)]))
    return await update(
        bus,
        tenant_id,
        lambda t: msgspec.structs.replace(t, **fields),
        by=by,
        detail=f"set {what}",
    )


async def set_state(
    bus: Bus, tenant_id: str, state: TenantState, *, by: str, why: str = ""
) -> Tenant:
    """Pause, resume or disable a tenant; a tenant already in ``state`` is left as it is."""
    why = tenant_fields.display_name(why, "why")
    change = state_change(state, by=by, why=why, at=now())
    return await update(bus, tenant_id, change, by=by, detail=state_detail(state, why))


async def set_domain_state(
    bus: Bus, tenant_id: str, domain: str, state: TenantState, *, by: str, why: str = ""
) -> Tenant:
    """Pause, resume or disable one sending domain of a tenant (its other domains keep
    sending); :class:`TenantNotFound` when the tenant has no such domain."""
    why = tenant_fields.display_name(why, "why")
    name = domain.strip().lower().rstrip(".")
    if not any(d.name == name for d in (await get(bus, tenant_id)).domains):
        raise TenantNotFound(f"tenant {tenant_id!r} has no domain {name!r}")
    change = domain_state_change(name, state, by=by, why=why, at=now())
    detail = f"domain {name} {state_detail(state, why)}"
    return await update(bus, tenant_id, change, by=by, detail=detail)


async def set_domain_pool(bus: Bus, tenant_id: str, domain: str, pool: str, *, by: str) -> Tenant:
    """Send one sending domain's mail from source pool ``pool`` ("" = the tenant's);
    :class:`TenantNotFound` when the tenant has no such domain."""
    pool = tenant_fields.ip_pool(pool)
    name = domain.strip().lower().rstrip(".")
    if not any(d.name == name for d in (await get(bus, tenant_id)).domains):
        raise TenantNotFound(f"tenant {tenant_id!r} has no domain {name!r}")

    def change(tenant: Tenant) -> Tenant:
        domains = tuple(
            msgspec.structs.replace(d, ip_pool=pool) if d.name == name else d
            for d in tenant.domains
        )
        return (
            tenant
            if domains == tenant.domains
            else msgspec.structs.replace(tenant, domains=domains)
        )

    return await update(bus, tenant_id, change, by=by, detail=f"domain {name} ip_pool {pool!r}")


async def set_domain_tracking(
    bus: Bus, tenant_id: str, domain: str, values: Mapping[str, object], *, by: str
) -> Tenant:
    """Change one sending domain's open and click tracking (``values``: ``opens``,
    ``clicks``, ``text_clicks`` as on/off/inherit or true/false/null, ``host``); checked
    by ``shared.tenant_fields.tracking`` before anything is published.
    :class:`TenantNotFound` when the tenant has no such domain."""
    name = domain.strip().lower().rstrip(".")
    if not any(d.name == name for d in (await get(bus, tenant_id)).domains):
        raise TenantNotFound(f"tenant {tenant_id!r} has no domain {name!r}")
    field = f"domains.{name}.tracking"

    def change(tenant: Tenant) -> Tenant:
        # Applied to the record as update() reads it, so a concurrent change of the
        # domain's other settings is kept (the revision check covers the rest).
        domains = tuple(
            msgspec.structs.replace(d, tracking=tenant_fields.tracking(d.tracking, values, field))
            if d.name == name
            else d
            for d in tenant.domains
        )
        return (
            tenant
            if domains == tenant.domains
            else msgspec.structs.replace(tenant, domains=domains)
        )

    what = ", ".join(f"tracking.{key}" for key in sorted(values))
    return await update(bus, tenant_id, change, by=by, detail=f"domain {name} set {what}")


def state_change(state: TenantState, *, by: str, why: str, at: float) -> Change:
    """The change setting a tenant's state (none when it is in ``state`` already)."""

    def change(tenant: Tenant) -> Tenant:
        if tenant.status.state == state:
            return tenant
        status = TenantStatus(state=state, by=by, why=why, at=at)
        return msgspec.structs.replace(tenant, status=status)

    return change


def domain_state_change(domain: str, state: TenantState, *, by: str, why: str, at: float) -> Change:
    """The change setting sending domain ``domain``'s state (none when it is in ``state``
    already, or the tenant has no such domain)."""

    def one(entry: SendingDomain) -> SendingDomain:
        if entry.name != domain or entry.status.state == state:
            return entry
        return msgspec.structs.replace(
            entry, status=TenantStatus(state=state, by=by, why=why, at=at)
        )

    def change(tenant: Tenant) -> Tenant:
        domains = tuple(one(entry) for entry in tenant.domains)
        return (
            tenant
            if domains == tenant.domains
            else msgspec.structs.replace(tenant, domains=domains)
        )

    return change


def state_detail(state: TenantState, why: str) -> str:
    """The audit event's detail for a change of state: ``pause: <why>``, ``resume``."""
    verb = {TenantState.ACTIVE: "resume", TenantState.PAUSED: "pause"}.get(state, "disable")
    return f"{verb}: {why}" if why else verb


async def remove(bus: Bus, tenant_id: str, *, by: str, timeout: float | None = None) -> bool:
    """Remove a tenant (a tombstone); ``False`` when there was none (a retry)."""
    before = (await read_all(bus)).get(tenant_id)
    if before is None:
        return False
    await _commit(bus, before, None, by=by, detail="remove", timeout=timeout)
    return True


def _keys(*mappings: Mapping[str, object] | None) -> list[str]:
    return [name for mapping in mappings if mapping for name in mapping]


def _check_unique(tenants: Mapping[str, Tenant], before: Tenant, after: Tenant) -> None:
    """Refuse credential names and domains ``after`` adds that another tenant owns."""
    new_logins = {c.name for c in after.credentials} - {c.name for c in before.credentials}
    new_domains = {d.name for d in after.domains} - {d.name for d in before.domains}
    for other in tenants.values():
        if other.id == after.id:
            continue
        for credential in other.credentials:
            if credential.name in new_logins:
                raise TenantConflict(
                    f"credential {credential.name!r} belongs to tenant {other.id!r}"
                )
        for domain in other.domains:
            if domain.name in new_domains:
                raise TenantConflict(f"domain {domain.name!r} belongs to tenant {other.id!r}")


async def _commit(
    bus: Bus,
    before: Tenant | None,
    after: Tenant | None,
    *,
    by: str,
    detail: str,
    timeout: float | None,
) -> None:
    """Publish ``after`` (or a tombstone) and its audit event in one atomic publish, unless
    the tenant changed since ``before`` was read."""
    tenant = after or before
    assert tenant is not None
    current = (await read_all(bus)).get(tenant.id)
    if (current.revision if current else None) != (before.revision if before else None):
        raise TenantChangedMeanwhile(
            f"tenant {tenant.id!r} changed meanwhile (by someone else), retry"
        )
    records = _records(before, after, by=by, detail=detail, at=now())
    await bus.publish(records, timeout=timeout)


def _records(
    before: Tenant | None, after: Tenant | None, *, by: str, detail: str, at: float
) -> list[OutRecord]:
    """The tenant record (or its tombstone) and its audit event."""
    tenant = after or before
    assert tenant is not None
    record = TENANTS.out(after) if after is not None else TENANTS.tombstone(tenant.id)
    event = Event(
        kind=EventKind.TENANT_CHANGED,
        at=at,
        tenant=tenant.id,
        by=by,
        detail=detail,
        stage="admin",
        before=audit_bytes(before),
        after=audit_bytes(after),
    )
    # Keyed by tenant (the topic's key would be empty: no message, no domain), so one
    # tenant's audit events keep their order on one partition.
    audit = OutRecord(EVENTS.name, tenant.id.encode(), EVENTS.encode(event))
    return [record, audit]


def audit_copy(tenant: Tenant) -> Tenant:
    """``tenant`` without what verifies a login or signs mail (password hashes, API key
    hashes, sealed private keys, sealed webhook secrets): what the audit trail keeps."""
    return msgspec.structs.replace(
        tenant,
        credentials=tuple(msgspec.structs.replace(c, secret="") for c in tenant.credentials),
        api_keys=tuple(msgspec.structs.replace(k, hash="") for k in tenant.api_keys),
        domains=tuple(
            msgspec.structs.replace(
                d,
                dkim=tuple(msgspec.structs.replace(k, sealed_private_key=b"") for k in d.dkim),
            )
            for d in tenant.domains
        ),
        webhooks=tuple(msgspec.structs.replace(w, sealed_secret=b"") for w in tenant.webhooks),
    )


def audit_bytes(tenant: Tenant | None) -> bytes:
    """The msgpack of :func:`audit_copy` (``b""`` for no tenant), as events carry it."""
    return TENANTS.encode(audit_copy(tenant)) if tenant is not None else b""


def public_view(tenant: Tenant) -> dict[str, Any]:
    """``tenant`` as JSON-able data for people: no secrets, no hashes, no sealed keys (the
    shape ``tenant_changed`` events show their records in: ``shared.wire.eventjson``)."""
    return tenant_view(audit_copy(tenant))
