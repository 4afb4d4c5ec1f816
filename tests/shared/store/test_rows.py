"""The pure parts of the store: an event's rows, id, day, origin and rollup counters."""

from __future__ import annotations

import json

from shared.store import counters, rows
from shared.store.counters import Rollups
from shared.wire.records import Event, EventKind, SmtpReply
from shared.wire.topics import EVENTS

AT = 1796637600.0  # 2026-12-07T10:00:00Z


def test_id_day_hour() -> None:
    raw = EVENTS.encode(Event(kind=EventKind.DELIVERED, at=AT))
    assert rows.event_id(raw) == rows.event_id(bytes(raw)) and len(rows.event_id(raw)) == 16
    assert rows.event_id(raw) != rows.event_id(raw + b"x")
    assert rows.day_of(AT) == 20261207
    assert rows.day_of(AT + 14 * 3600) == 20261208  # midnight UTC
    assert rows.hour_of(AT + 3599.9) == int(AT)


def test_event_row() -> None:
    event = Event(
        kind=EventKind.BOUNCED,
        message_id="m",
        at=AT,
        recipient="Bob@Example.ORG",
        sender="News@Shop.example",
        tags={"campaign": "c"},
        reply=SmtpReply(code=550, enhanced="5.1.1", text="unknown"),
        headers=b"Subject: x\r\n",
        tenant="t",
    )
    row = dict(
        zip(rows.EVENT_COLUMNS, rows.event_row(b"raw", event, rows.own_origin(event)), strict=True)
    )
    assert row["recipient"] == "bob@example.org" and row["recipient_domain"] == "example.org"
    assert row["sender"] == "news@shop.example" and row["sender_domain"] == "shop.example"
    assert (row["code"], row["status"], row["detail"]) == (550, "5.1.1", "unknown")
    assert row["campaign"] == "c"
    doc = json.loads(row["doc"])
    assert "headers" not in doc and doc["kind"] == "bounced" and "attempt" not in doc


def test_origin_merge() -> None:
    bounce = Event(kind=EventKind.BOUNCED, message_id="m", at=AT, subject="")
    assert rows.needs_origin(bounce)
    found = rows.Origin(tenant="t", sender="a@b.example", campaign="c", subject="s")
    merged = rows.merged(rows.own_origin(bounce), found)
    assert (merged.tenant, merged.sender_domain, merged.campaign, merged.subject) == (
        "t",
        "b.example",
        "c",
        "",
    )
    accepted = Event(kind=EventKind.ACCEPTED, message_id="m", at=AT)
    assert not rows.needs_origin(accepted)


def test_bounce_classes() -> None:
    def bounced(**fields: str) -> Event:
        return Event(kind=EventKind.BOUNCED, at=AT, **fields)  # type: ignore[arg-type]

    assert counters.hourly_counters(bounced(classification="hard")) == ("bounced", "bounced_hard")
    assert counters.hourly_counters(bounced(classification="soft")) == ("bounced", "bounced_soft")
    assert counters.hourly_counters(bounced(classification="bounced", reason="mailboxfull")) == (
        "bounced",
        "bounced_soft",
    )
    assert counters.hourly_counters(bounced(classification="block", reason="blocked")) == (
        "bounced",
    )
    assert counters.hourly_counters(bounced(reason="not-a-reason")) == ("bounced",)


def test_opens_clicks_and_uncounted_kinds() -> None:
    def of(kind: EventKind, machine: bool = False) -> tuple[str, ...]:
        return counters.hourly_counters(Event(kind=kind, at=AT, machine=machine))

    assert of(EventKind.OPENED) == ("opened",)
    assert of(EventKind.OPENED, True) == ("opened_machine",)
    assert of(EventKind.CLICKED, True) == ("clicked_machine",)
    assert of(EventKind.SIGNED) == () and of(EventKind.TLS_SESSION) == ()
    assert of(EventKind.SUPPRESSED) == ("suppressed",)


def test_rollups_sum_per_key() -> None:
    origin = rows.Origin(tenant="t", sender="a@s.example", campaign="c")
    rollups = Rollups()
    for n in range(3):
        rollups.add(Event(kind=EventKind.DELIVERED, at=AT + n, domain="x.test"), origin)
    rollups.add(Event(kind=EventKind.SIGNED, at=AT), origin)
    [hourly] = rollups.hourly_rows()
    assert hourly[:6] == (int(AT), 20261207, "t", "s.example", "c", "")
    assert hourly[6 + counters.HOURLY_COUNTERS.index("delivered")] == 3
    assert rollups.domain_rows() == [(int(AT), 20261207, "t", "c", "x.test", 3, 0, 0)]
    assert rollups.reason_rows() == []
