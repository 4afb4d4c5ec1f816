"""Request bodies: one event object, or an array for batching endpoints, with their ids."""

from __future__ import annotations

import json

import pytest

from services.webhooks.payload import Item, batch_id, body, item_of
from shared.wire.eventjson import event_id
from shared.wire.records import Event, EventKind
from shared.wire.topics import EVENTS


def _item(n: int) -> Item:
    event = Event(kind=EventKind.DELIVERED, message_id=f"m{n}", at=1_700_000_000.0 + n)
    return item_of(event, EVENTS.encode(event))


def test_one_event_is_its_object_with_its_id() -> None:
    event = Event(kind=EventKind.BOUNCED, message_id="m1", at=1_700_000_000.5, recipient="a@b.c")
    value = EVENTS.encode(event)
    msg_id, data = body([item_of(event, value)], as_array=False)
    obj = json.loads(data)
    assert msg_id == obj["id"] == event_id(value)
    assert obj["type"] == "bounced"
    assert obj["data"]["recipient"] == "a@b.c"


def test_a_batch_is_an_array_with_a_deterministic_id() -> None:
    items = [_item(n) for n in range(3)]
    msg_id, data = body(items, as_array=True)
    assert [o["id"] for o in json.loads(data)] == [i.event_id for i in items]
    assert msg_id == batch_id([i.event_id for i in items]) == body(items, as_array=True)[0]
    assert msg_id != body(items[:2], as_array=True)[0]
    assert msg_id.startswith("msg_")


def test_a_batching_endpoint_gets_an_array_even_for_one_event() -> None:
    _, data = body([_item(1)], as_array=True)
    assert isinstance(json.loads(data), list)


def test_without_batching_a_request_carries_one_event() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        body([_item(1), _item(2)], as_array=False)
