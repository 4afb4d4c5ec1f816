"""Events as JSON for the businesses we send for: the webhook payload and ``events tail --json``.

One event is one JSON object (Standard Webhooks' payload shape)::

    {"id": "evt_...", "type": "delivered", "timestamp": "2026-12-07T10:00:00.123Z",
     "data": {"message_id": "...", "recipient": "...", ...}}

- ``id`` is derived from the event's bytes on ``postline.events`` (:func:`event_id`), so a
  retry, a redelivery after a crash and a replay all carry the same id: the receiver
  deduplicates on it (delivery is at least once);
- ``type`` is the event kind (``shared.wire.records.EventKind``);
- ``data`` holds the fields its kind declares (``shared.wire.eventkinds``: the published
  contract) that carry a value: empty strings, zeros, empty collections, ``false`` and
  ``null`` are left out, so an absent field means its empty value. ``reply`` is always the
  whole object (``code``, ``enhanced``, ``text``); raw bytes (``headers``) are never
  included; a ``tenant_changed`` event's ``before`` and ``after`` are the tenant records as
  ``postline tenant show`` prints them (without secrets).

The published schema of every kind (``docs/events.schema.json``, ``docs/events.md``) is
generated from the same table by ``shared.wire.eventschema``; this module owns the mapping.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import msgspec

from shared.errors import DecodeError
from shared.wire.eventkinds import KINDS
from shared.wire.records import Event, EventKind, Tenant
from shared.wire.topics import TENANTS

#: The empty values left out of ``data`` (``0 == 0.0 == False``).
_EMPTY: tuple[object, ...] = ("", 0, None, (), [], {})
#: Fields holding a tenant record's msgpack bytes (``tenant_changed``): shown decoded.
_TENANT_RECORDS = frozenset({"before", "after"})

#: The kinds about a tenant's own mail, which its webhooks may receive (the others are the
#: operator's: audit trails, throttling, dead letters).
TENANT_KINDS: frozenset[EventKind] = frozenset(
    {
        EventKind.ACCEPTED,
        EventKind.REJECTED,
        EventKind.SIGNED,
        EventKind.DELIVERED,
        EventKind.DEFERRED,
        EventKind.BOUNCED,
        EventKind.EXPIRED,
        EventKind.COMPLAINED,
        EventKind.UNSUBSCRIBED,
        EventKind.SUPPRESSED,
        EventKind.AUTO_REPLIED,
        EventKind.FAILED,
        EventKind.DELETED,
        EventKind.SCANNED,
        EventKind.OPENED,
        EventKind.CLICKED,
        EventKind.TRACKING,
    }
)


def event_id(value: bytes) -> str:
    """The stable id of the event whose record bytes are ``value``."""
    return "evt_" + hashlib.sha256(value).hexdigest()[:32]


def timestamp(at: float) -> str:
    """RFC 3339 in UTC with milliseconds."""
    whole = int(at)
    millis = round((at - whole) * 1000)
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def event_object(event: Event, event_id: str) -> dict[str, Any]:
    """The JSON-ready object of one event (see the module docstring)."""
    declared = KINDS[event.kind].names()
    data: dict[str, Any] = {}
    for name, value in msgspec.to_builtins(event).items():
        if name not in declared or value in _EMPTY:
            continue
        if name not in _TENANT_RECORDS:
            data[name] = value
        elif (tenant := _tenant(getattr(event, name))) is not None:
            data[name] = tenant
    return {
        "id": event_id,
        "type": event.kind.value,
        "timestamp": timestamp(event.at),
        "data": data,
    }


def tenant_view(tenant: Tenant) -> dict[str, Any]:
    """``tenant`` as JSON-able data without the fields that hold secrets (password and API
    key hashes, sealed DKIM keys and webhook secrets), whatever their value: the caller
    strips the values themselves first (``shared.tenant_admin.audit_copy``)."""
    data: dict[str, Any] = msgspec.to_builtins(tenant)
    for credential in data["credentials"]:
        del credential["secret"]
    for api_key in data["api_keys"]:
        del api_key["hash"]
    for domain in data["domains"]:
        for key in domain["dkim"]:
            del key["sealed_private_key"]
    for endpoint in data["webhooks"]:
        del endpoint["sealed_secret"]
    return data


def _tenant(raw: bytes) -> dict[str, Any] | None:
    """The tenant record of an audit event's ``before``/``after`` bytes (already an audit
    copy: ``shared.tenant_admin.audit_bytes``); ``None`` when it does not decode, which
    leaves the field out rather than stopping a reader of the whole log at one record."""
    try:
        return tenant_view(TENANTS.decode(raw))
    except DecodeError:
        return None
