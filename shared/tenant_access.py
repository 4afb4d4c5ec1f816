"""Tenants' SMTP logins and HTTP API keys: add, rotate, remove, revoke.

Each operation is one :func:`shared.tenant_admin.update`, so it is published with its audit
event and checked against the other tenants (a login name is unique across tenants). Secrets
(``shared.credentials``) are returned once, for the caller to show once, and stored only as
hashes: a password as scrypt, an API key as SHA-256. Revoked API keys stay in the record (so
their ids are never reused and lists show when they ended) but never match.
"""

from __future__ import annotations

import asyncio

import msgspec

from shared import tenant_fields
from shared.bus.base import Bus
from shared.credentials import (
    MIN_PASSWORD,
    generate_password,
    hash_api_key,
    hash_secret,
    new_api_key,
)
from shared.errors import TenantConflict, TenantInvalid, TenantNotFound
from shared.tenant_admin import get, read_all, update
from shared.wire.records import ApiKey, Credential, Tenant, now


async def add_credential(
    bus: Bus,
    tenant_id: str,
    name: str,
    *,
    password: str | None = None,
    domains: tuple[str, ...] = (),
    by: str,
) -> tuple[Credential, str]:
    """Add SMTP AUTH login ``name`` (unique across tenants); returns it and its password,
    generated unless given. ``domains`` restricts it to some of the tenant's domains."""
    tenant_fields.credential_name(name)
    wanted = tenant_fields.domain_list(domains)
    password = _password(password)
    secret = await asyncio.to_thread(hash_secret, password)
    credential = Credential(name=name, secret=secret, created_at=now(), domains=wanted)

    def change(tenant: Tenant) -> Tenant:
        if any(c.name == name for c in tenant.credentials):
            raise TenantConflict(
                f"credential {name!r} exists in tenant {tenant.id!r} (use credential rotate)"
            )
        owned = {d.name for d in tenant.domains}
        for domain in wanted:
            if domain not in owned:
                raise TenantInvalid(
                    f"credential domains: {domain!r} is not a sending domain of tenant "
                    f"{tenant.id!r}"
                )
        return msgspec.structs.replace(tenant, credentials=(*tenant.credentials, credential))

    await update(bus, tenant_id, change, by=by, detail=f"credential add {name}")
    return credential, password


async def rotate_credential(
    bus: Bus, tenant_id: str, name: str, *, password: str | None = None, by: str
) -> tuple[Credential, str]:
    """Give login ``name`` a new password (generated unless given); returns it, once."""
    password = _password(password)
    secret = await asyncio.to_thread(hash_secret, password)
    rotated: list[Credential] = []

    def change(tenant: Tenant) -> Tenant:
        credential = _credential(tenant, name)
        new = msgspec.structs.replace(credential, secret=secret, created_at=now())
        rotated.append(new)
        others = tuple(c for c in tenant.credentials if c.name != name)
        return msgspec.structs.replace(tenant, credentials=(*others, new))

    await update(bus, tenant_id, change, by=by, detail=f"credential rotate {name}")
    return rotated[-1], password


async def remove_credential(bus: Bus, tenant_id: str, name: str, *, by: str) -> bool:
    """Remove login ``name``; ``False`` when the tenant has none by that name (a retry)."""
    tenant = await get(bus, tenant_id)
    if not any(c.name == name for c in tenant.credentials):
        return False

    def change(tenant: Tenant) -> Tenant:
        kept = tuple(c for c in tenant.credentials if c.name != name)
        return msgspec.structs.replace(tenant, credentials=kept)

    await update(bus, tenant_id, change, by=by, detail=f"credential remove {name}")
    return True


def _credential(tenant: Tenant, name: str) -> Credential:
    for credential in tenant.credentials:
        if credential.name == name:
            return credential
    raise TenantNotFound(f"no credential {name!r} in tenant {tenant.id!r}")


def _password(given: str | None) -> str:
    if given is None:
        return generate_password()
    if len(given) < MIN_PASSWORD:
        raise TenantInvalid(f"password: at least {MIN_PASSWORD} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in given):
        raise TenantInvalid("password: contains a control character")
    return given


async def add_api_key(bus: Bus, tenant_id: str, *, name: str = "", by: str) -> tuple[ApiKey, str]:
    """A new API key for the tenant; returns the record and the whole key, to show once."""
    name = tenant_fields.display_name(name)
    taken = {k.id for t in (await read_all(bus)).values() for k in t.api_keys}
    key, key_id = new_api_key()
    while key_id in taken:  # 32-bit ids: a collision is rare, never fatal
        key, key_id = new_api_key()
    record = ApiKey(id=key_id, hash=hash_api_key(key), created_at=now(), name=name)

    def change(tenant: Tenant) -> Tenant:
        return msgspec.structs.replace(tenant, api_keys=(*tenant.api_keys, record))

    await update(bus, tenant_id, change, by=by, detail=f"apikey add {key_id}")
    return record, key


async def revoke_api_key(bus: Bus, tenant_id: str, key_id: str, *, by: str) -> ApiKey:
    """Revoke the key ``key_id`` (its visible prefix); a revoked key stays revoked."""

    def change(tenant: Tenant) -> Tenant:
        if not any(k.id == key_id for k in tenant.api_keys):
            raise TenantNotFound(f"no API key {key_id!r} in tenant {tenant.id!r}")
        at = now()
        keys = tuple(
            msgspec.structs.replace(k, revoked_at=at) if k.id == key_id and not k.revoked_at else k
            for k in tenant.api_keys
        )
        return msgspec.structs.replace(tenant, api_keys=keys)

    tenant = await update(bus, tenant_id, change, by=by, detail=f"apikey revoke {key_id}")
    return next(k for k in tenant.api_keys if k.id == key_id)
