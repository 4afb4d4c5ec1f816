"""The JSON object of an event (``shared.wire.eventjson``): what webhooks send and
``postline events tail --json`` prints."""

from __future__ import annotations

import json

import pytest

from shared.wire.eventjson import event_id, event_object, tenant_view, timestamp
from shared.wire.records import (
    ApiKey,
    Credential,
    DkimKeyRecord,
    Event,
    EventKind,
    SendingDomain,
    SmtpReply,
    Tenant,
    WebhookEndpoint,
)
from shared.wire.topics import EVENTS, TENANTS

AT = 1796637600.125  # 2026-12-07T10:00:00.125Z


@pytest.mark.parametrize(
    ("at", "text"),
    [
        (AT, "2026-12-07T10:00:00.125Z"),
        (1796637600.0, "2026-12-07T10:00:00.000Z"),
        (1796637600.0004, "2026-12-07T10:00:00.000Z"),
        (1796637600.0006, "2026-12-07T10:00:00.001Z"),
        # Rounds up into the next second, and across midnight, not to ".1000".
        (1796637600.9996, "2026-12-07T10:00:01.000Z"),
        (1796687999.9999, "2026-12-08T00:00:00.000Z"),
        (0.0, "1970-01-01T00:00:00.000Z"),
    ],
)
def test_timestamp_is_rfc3339_utc_milliseconds(at: float, text: str) -> None:
    assert timestamp(at) == text


def test_the_id_comes_from_the_record_bytes() -> None:
    event = Event(kind=EventKind.DELIVERED, message_id="m1", at=AT, recipient="a@x.test")
    raw = EVENTS.encode(event)
    assert event_id(raw) == event_id(EVENTS.encode(EVENTS.decode(raw)))  # a replay: same id
    assert event_id(raw).startswith("evt_") and len(event_id(raw)) == 4 + 32
    later = EVENTS.encode(Event(kind=EventKind.DELIVERED, message_id="m1", at=AT + 1))
    assert event_id(later) != event_id(raw)


def test_the_envelope_and_only_values_in_data() -> None:
    event = Event(
        kind=EventKind.DELIVERED,
        message_id="m1",
        at=AT,
        recipient="a@x.test",
        domain="x.test",
        reply=SmtpReply(code=250, text="OK"),
        attempt=1,
        tls="",
        bulk=False,
        tags={},
        headers=b"Subject: never\r\n",
    )
    assert event_object(event, "evt_1") == {
        "id": "evt_1",
        "type": "delivered",
        "timestamp": "2026-12-07T10:00:00.125Z",
        "data": {
            "message_id": "m1",
            "recipient": "a@x.test",
            "domain": "x.test",
            # The reply is always whole, its empty enhanced code included.
            "reply": {"code": 250, "enhanced": "", "text": "OK"},
            "attempt": 1,
        },
    }


def test_only_the_fields_the_kind_declares() -> None:
    # `by` and `figures` mean nothing for a delivery: never published for one.
    event = Event(kind=EventKind.DELIVERED, message_id="m1", at=AT, by="cli:x", figures={"a": 1.0})
    assert event_object(event, "evt_1")["data"] == {"message_id": "m1"}


def test_booleans_collections_and_numbers_appear_when_set() -> None:
    event = Event(
        kind=EventKind.CLICKED,
        message_id="m1",
        at=AT,
        recipient="a@x.test",
        url="https://shop.example/a",
        link=2,
        agent="scanner",
        machine=True,
    )
    data = event_object(event, "evt_1")["data"]
    assert (data["machine"], data["link"]) == (True, 2)
    opened = event_object(Event(kind=EventKind.OPENED, at=AT, machine=False), "evt_2")
    assert "machine" not in opened["data"]
    accepted = Event(
        kind=EventKind.ACCEPTED, at=AT, recipients=2, recipient_domains=("a.test", "b.test")
    )
    data = json.loads(json.dumps(event_object(accepted, "evt_3")))["data"]
    assert data == {"recipients": 2, "recipient_domains": ["a.test", "b.test"]}


def _full_tenant() -> Tenant:
    key = DkimKeyRecord(
        selector="s1",
        algorithm="ed25519",
        public_key="p",
        sealed_private_key=b"sealed",
        created_at=AT,
    )
    return Tenant(
        id="acme",
        domains=(SendingDomain(name="shop.example", dkim=(key,)),),
        credentials=(Credential(name="app", secret="scrypt$1$2$3$s$h", created_at=AT),),
        api_keys=(ApiKey(id="pl_1", hash="ab" * 32, created_at=AT),),
        webhooks=(
            WebhookEndpoint(
                id="wh_1", url="https://x.test/h", sealed_secret=b"sealed", created_at=AT
            ),
        ),
    )


def test_tenant_changed_shows_the_records_without_secret_fields() -> None:
    tenant = _full_tenant()
    event = Event(
        kind=EventKind.TENANT_CHANGED,
        at=AT,
        tenant="acme",
        by="cli:ops",
        detail="set name",
        stage="admin",
        after=TENANTS.encode(tenant),
    )
    data = event_object(event, "evt_1")["data"]
    assert "before" not in data  # added: nothing before
    after = data["after"]
    assert after["id"] == "acme" and after["credentials"][0] == {
        "name": "app",
        "created_at": AT,
        "domains": (),
    }
    text = json.dumps(after)
    for secret in ("secret", "hash", "sealed_private_key", "sealed_secret"):
        assert f'"{secret}"' not in text
    assert after == tenant_view(tenant)


def test_an_undecodable_tenant_record_is_left_out() -> None:
    event = Event(kind=EventKind.TENANT_CHANGED, at=AT, tenant="acme", before=b"\xc1 bad")
    assert "before" not in event_object(event, "evt_1")["data"]
