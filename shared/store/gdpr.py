"""Export and erasure of one address in the reporting store (GDPR articles 15 and 17).

Owns what the store holds about an address and removing it: the ``events`` rows whose
recipient or sender it is, and the ``messages`` rows it sent (the store lower-cases both, so
the address is compared lower-cased). Rollups stay: they are counts per tenant, domain,
campaign and hour, with no address in them. The erasure itself is recorded in ``erasures``
without the address: its keyed hash (``shared.addresshash``), who, when, how many rows.

With a tenant, only that tenant's rows: its own, and its messages' events that carry no
tenant (the bouncer's asynchronous bounces and complaints, attributed through ``messages``);
the ``default`` tenant also owns rows written with an empty tenant (writers from before
tenants). It does not touch the topics (``shared.gdpr``) and does not decide who may erase.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from shared.store.db import Database, Executor
from shared.wire.records import DEFAULT_TENANT

#: The events about an address: it received them or it sent the message.
_EVENTS_OF = "(recipient = $1 OR sender = $1)"
_MESSAGES_OF = "sender = $1"


def _tenant_clause(tenant: str, *, attributed: bool) -> str:
    """The rows of ``tenant`` (``$2``); ``attributed`` adds events without a tenant whose
    message is the tenant's. Empty when no tenant is given (every tenant's rows)."""
    if not tenant:
        return ""
    own = "tenant IN ($2, '')" if tenant == DEFAULT_TENANT else "tenant = $2"
    if not attributed:
        return f" AND {own}"
    return (
        f" AND ({own} OR (tenant = '' AND message_id IN"
        " (SELECT message_id FROM messages WHERE tenant = $2)))"
    )


def _args(address: str, tenant: str) -> tuple[str, ...]:
    normal = address.strip().lower()
    return (normal, tenant) if tenant else (normal,)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row as JSON-able data: the event id as hex, the JSON columns parsed."""
    out = dict(row)
    if isinstance(out.get("id"), bytes | bytearray | memoryview):
        out["id"] = bytes(out["id"]).hex()
    for name in ("doc", "tags"):
        if isinstance(out.get(name), str):
            with contextlib.suppress(ValueError):  # not JSON: kept as the text it is
                out[name] = json.loads(out[name])
    if "machine" in out:
        out["machine"] = bool(out["machine"])
    return out


async def export_address(db: Executor, address: str, tenant: str = "") -> dict[str, Any]:
    """Every store row about ``address`` (of ``tenant`` when given), oldest first:
    ``{"events": [...], "messages": [...]}``."""
    args = _args(address, tenant)
    events = await db.fetch(
        f"SELECT * FROM events WHERE {_EVENTS_OF}"
        f"{_tenant_clause(tenant, attributed=True)} ORDER BY at, kind",
        *args,
    )
    messages = await db.fetch(
        f"SELECT * FROM messages WHERE {_MESSAGES_OF}"
        f"{_tenant_clause(tenant, attributed=False)} ORDER BY at",
        *args,
    )
    return {"events": [_plain(r) for r in events], "messages": [_plain(r) for r in messages]}


async def count_address(db: Executor, address: str, tenant: str = "") -> dict[str, int]:
    """How many rows :func:`erase_address` would delete."""
    args = _args(address, tenant)
    events = await db.fetchval(
        f"SELECT count(*) FROM events WHERE {_EVENTS_OF}{_tenant_clause(tenant, attributed=True)}",
        *args,
    )
    messages = await db.fetchval(
        f"SELECT count(*) FROM messages WHERE {_MESSAGES_OF}"
        f"{_tenant_clause(tenant, attributed=False)}",
        *args,
    )
    return {"events": int(events), "messages": int(messages)}


async def erase_address(
    db: Database,
    address: str,
    *,
    tenant: str,
    address_hash: str,
    by: str,
    at: float,
    counts: dict[str, int] | None = None,
) -> dict[str, int]:
    """Delete the rows about ``address`` (of ``tenant`` when given) and record the erasure
    in ``erasures``, in one transaction; the rows deleted per table.

    ``counts`` adds what was erased elsewhere (topics) to the record. Events go before
    messages: the tenant attribution of events reads ``messages``.
    """
    args = _args(address, tenant)
    async with db.transaction() as tx:
        deleted = await count_address(tx, address, tenant)
        await tx.execute(
            f"DELETE FROM events WHERE {_EVENTS_OF}{_tenant_clause(tenant, attributed=True)}",
            *args,
        )
        await tx.execute(
            f"DELETE FROM messages WHERE {_MESSAGES_OF}{_tenant_clause(tenant, attributed=False)}",
            *args,
        )
        record = {f"store_{name}": n for name, n in deleted.items()} | (counts or {})
        await tx.execute(
            "INSERT INTO erasures (at, tenant, address_hash, by, counts)"
            " VALUES ($1, $2, $3, $4, $5)",
            at,
            tenant,
            address_hash,
            by,
            json.dumps(record, sort_keys=True),
        )
    return deleted


async def erasures(db: Executor, address_hash: str = "") -> list[dict[str, Any]]:
    """The erasure records (of one keyed hash when given), oldest first."""
    where = " WHERE address_hash = $1" if address_hash else ""
    args = (address_hash,) if address_hash else ()
    rows = await db.fetch(
        f"SELECT at, tenant, address_hash, by, counts FROM erasures{where} ORDER BY at, id", *args
    )
    return [{**r, "counts": json.loads(r["counts"])} for r in rows]
