"""What one webhook request carries: the body and its ``webhook-id``.

A request carries one event, the JSON object of ``shared.wire.eventjson``, as its body; an
endpoint whose ``batch`` is above 1 always gets a JSON array (of 1 to ``batch`` objects),
so its receiver parses one shape. ``webhook-id`` is the event's id for one event, and for
an array a deterministic id over its event ids (``msg_`` + SHA-256): a retried batch with the
same events has the same id; the receiver deduplicates on each object's ``id`` anyway,
because after a failure events are retried one by one and may be batched differently.

Owns the pure shapes, not how events are gathered into a batch (``dispatch.py``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgspec

from shared.wire.eventjson import event_id, event_object
from shared.wire.records import Event

_JSON = msgspec.json.Encoder()


@dataclass(frozen=True)
class Item:
    """One event bound for an endpoint: its id, its JSON object's bytes and its time."""

    event_id: str
    payload: bytes
    event_at: float


def item_of(event: Event, value: bytes) -> Item:
    """The item of the event whose record bytes on ``postline.events`` are ``value``."""
    ident = event_id(value)
    return Item(ident, _JSON.encode(event_object(event, ident)), event.at)


def batch_id(event_ids: list[str]) -> str:
    """The ``webhook-id`` of a batch: the same ids in the same order give the same id."""
    return "msg_" + hashlib.sha256("\n".join(event_ids).encode()).hexdigest()[:32]


def body(items: list[Item], as_array: bool) -> tuple[str, bytes]:
    """``(webhook-id, body)`` of one request carrying ``items`` (one unless ``as_array``)."""
    if not as_array:
        if len(items) != 1:
            raise ValueError("a request without batching carries exactly one event")
        return items[0].event_id, items[0].payload
    return batch_id([i.event_id for i in items]), b"[" + b",".join(i.payload for i in items) + b"]"
