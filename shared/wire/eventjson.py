"""Events as JSON for the businesses we send for: the webhook payload and ``events tail --json``.

One event is one JSON object (Standard Webhooks' payload shape)::

    {"id": "evt_...", "type": "delivered", "timestamp": "2026-12-07T10:00:00.123Z",
     "data": {"message_id": "...", "recipient": "...", ...}}

- ``id`` is derived from the event's bytes on ``postline.events`` (:func:`event_id`), so a
  retry, a redelivery after a crash and a replay all carry the same id: the receiver
  deduplicates on it (delivery is at least once);
- ``type`` is the event kind (``shared.wire.records.EventKind``);
- ``data`` holds the event's fields that carry a value (empty strings, zeros, empty
  collections and ``false`` are left out, so a kind's object holds only what it says);
  raw bytes (``headers``, ``before``, ``after``) are never included.

The published schema of every kind is ``docs/events.md``; this module owns the mapping.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import msgspec

from shared.wire.records import Event, EventKind

#: Raw bytes: large (a header block, a whole tenant record) and not for tenants.
_OMITTED = frozenset({"headers", "before", "after", "schema", "kind", "at"})

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
    data = {
        name: value
        for name, value in msgspec.to_builtins(event).items()
        if name not in _OMITTED and value not in ("", 0, 0.0, False, None, [], {})
    }
    return {
        "id": event_id,
        "type": event.kind.value,
        "timestamp": timestamp(event.at),
        "data": data,
    }
