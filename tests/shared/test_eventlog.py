"""Formatting and reading ``postline.events`` (``shared.eventlog``), on a real embedded bus."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shared import eventlog
from shared.bus.base import BusMessage
from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig
from shared.wire.eventjson import event_id, event_object
from shared.wire.records import Event, EventKind, SmtpReply
from shared.wire.topics import EVENTS, OutRecord

AT = 1795818566.702  # 2026-11-27T22:29:26.702Z


def test_line_has_time_kind_id_recipient_and_what_is_set() -> None:
    event = Event(
        kind=EventKind.DEFERRED,
        message_id="m1",
        at=AT,
        recipient="bob@example.com",
        reply=SmtpReply(code=451, enhanced="4.7.0", text="Try\r\nagain later"),
        mx="mx1.example.com",
        attempt=2,
        classification="rate_limit",
        stage="deliverer",
    )
    assert eventlog.format_line(event) == (
        "2026-11-27T22:29:26.702Z deferred     m1 bob@example.com "
        'reply="451 4.7.0 Try again later" attempt=2 mx=mx1.example.com '
        "classification=rate_limit stage=deliverer"
    )


def test_line_is_one_line_even_when_details_hold_line_breaks() -> None:
    event = Event(kind=EventKind.FAILED, message_id="m1", at=AT, detail="no key\nfor x")
    line = eventlog.format_line(event)
    assert "\n" not in line and 'detail="no key for x"' in line


def test_destination_event_shows_its_domain() -> None:
    event = Event(kind=EventKind.THROTTLED, at=AT, domain="example.com")
    assert eventlog.format_line(event).split()[2:4] == ["-", "domain=example.com"]


def test_event_json_is_the_webhook_object_without_headers() -> None:
    event = Event(kind=EventKind.BOUNCED, message_id="m1", at=AT, headers=b"Subject: x\r\n")
    raw = EVENTS.encode(event)
    data = eventlog.event_json(eventlog.Logged(event, event_id(raw)))
    assert data == event_object(event, event_id(raw))
    assert data["type"] == "bounced" and data["timestamp"] == "2026-11-27T22:29:26.702Z"
    assert data["id"] == event_id(raw) and "headers" not in data["data"]


def test_decode_gives_the_id_of_the_record_bytes() -> None:
    raw = EVENTS.encode(Event(kind=EventKind.DELIVERED, message_id="m1", at=AT))
    item = eventlog.decode(BusMessage(EVENTS.name, 0, 7, b"m1", raw, AT))
    assert isinstance(item, eventlog.Logged)
    assert item.id == event_id(raw) and item.event.message_id == "m1"


def test_history_summary_gives_the_last_state_per_recipient() -> None:
    events = [
        Event(kind=EventKind.ACCEPTED, message_id="m1", at=AT),
        Event(kind=EventKind.DEFERRED, message_id="m1", at=AT + 1, recipient="a@x.test"),
        Event(kind=EventKind.DELIVERED, message_id="m1", at=AT + 2, recipient="a@x.test"),
        Event(kind=EventKind.BOUNCED, message_id="m1", at=AT + 3, recipient="b@x.test"),
    ]
    lines = list(eventlog.format_history("m1", events))
    assert lines[0] == "message m1: 4 event(s)"
    assert lines[-2:] == ["  -> a@x.test: delivered", "  -> b@x.test: bounced"]


def test_parse_kinds_names_the_choices() -> None:
    assert eventlog.parse_kinds(["Delivered", "bounced"]) == {
        EventKind.DELIVERED,
        EventKind.BOUNCED,
    }
    with pytest.raises(ValueError, match=r"unknown event kind 'nope'.*delivered"):
        eventlog.parse_kinds(["nope"])


def records(*events: Event) -> list[OutRecord]:
    return [EVENTS.out(event) for event in events]


async def test_history_reads_one_message_in_order_and_reports_garbage(tmp_path: Path) -> None:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db"))
    await bus.start()
    try:
        await bus.publish(
            records(
                Event(kind=EventKind.ACCEPTED, message_id="m1", at=AT),
                Event(kind=EventKind.ACCEPTED, message_id="m2", at=AT),
                Event(kind=EventKind.SIGNED, message_id="m1", at=AT + 1),
            )
        )
        await bus.publish([OutRecord(EVENTS.name, b"m1", b"\xc1 not msgpack")])
        await bus.publish(
            records(Event(kind=EventKind.DELIVERED, message_id="m1", at=AT + 2, recipient="a@x"))
        )
        bad: list[eventlog.Undecodable] = []
        found = await eventlog.history(bus, "m1", quiet=0.5, on_bad=bad.append)
    finally:
        await bus.close()
    assert [e.event.kind for e in found] == [
        EventKind.ACCEPTED,
        EventKind.SIGNED,
        EventKind.DELIVERED,
    ]
    assert len(bad) == 1 and "cannot decode" in bad[0].reason


async def test_tail_filters_by_kind_and_message_and_follows_new_events(tmp_path: Path) -> None:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db"))
    await bus.start()
    try:
        await bus.publish(
            records(
                Event(kind=EventKind.DELIVERED, message_id="m1", at=AT),
                Event(kind=EventKind.DELIVERED, message_id="m2", at=AT),
                Event(kind=EventKind.ACCEPTED, message_id="m2", at=AT),
            )
        )
        selection = eventlog.EventFilter(kinds=frozenset({EventKind.DELIVERED}), message_id="m2")
        stream = eventlog.tail(bus, selection, from_beginning=True)
        first = await asyncio.wait_for(anext(stream), 10)
        await bus.publish(
            records(Event(kind=EventKind.DELIVERED, message_id="m2", at=AT + 5, attempt=2))
        )
        second = await asyncio.wait_for(anext(stream), 10)
        await stream.aclose()  # type: ignore[attr-defined]
    finally:
        await bus.close()
    assert isinstance(first, eventlog.Logged)
    assert (first.event.message_id, first.event.attempt) == ("m2", 0)
    assert isinstance(second, eventlog.Logged) and second.event.attempt == 2


def test_message_level_event_shows_its_sender() -> None:
    event = Event(kind=EventKind.ACCEPTED, message_id="m1", at=AT, sender="app@x.test")
    assert "from=app@x.test" in eventlog.format_line(event)
    delivered = Event(
        kind=EventKind.DELIVERED, message_id="m1", at=AT, sender="app@x.test", recipient="b@y"
    )
    assert "from=" not in eventlog.format_line(delivered)
