"""The sender's DSN request (RFC 3461) honoured by the bouncer's DSNs, on the embedded bus:
NOTIFY (NEVER, FAILURE, DELAY on the first deferral only, SUCCESS as a "relayed" notice
unless the MX took the duty over), RET, ENVID and ORCPT."""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message
from typing import Any

from services.bouncer.config import DsnPolicy
from services.bouncer.dsngen import build_dsn
from services.bouncer.parse import parse_message
from services.bouncer.report import ReportKind
from shared.wire.records import Delivery, Event, EventKind, SmtpReply
from shared.wire.topics import EVENTS, OUTBOUND
from tests.services.bouncer.conftest import Running
from tests.services.bouncer.conftest import wait_for_records as wait_for

MSGID = "0123456789abcdef0123456789abcdef"  # one key: one partition, events in order
HEADERS = b"From: app@shop.example\r\nSubject: order 42\r\nMessage-ID: <m42@shop.example>\r\n"


def event(kind: EventKind, recipient: str, **fields: Any) -> Event:
    replies = {
        EventKind.DELIVERED: SmtpReply(code=250, enhanced="2.0.0", text="ok queued"),
        EventKind.DEFERRED: SmtpReply(code=451, enhanced="4.7.1", text="greylisted"),
        EventKind.BOUNCED: SmtpReply(code=550, enhanced="5.1.1", text="no such user"),
    }
    values: dict[str, Any] = {
        "message_id": MSGID,
        "at": 1_763_000_000.0,
        "recipient": recipient,
        "domain": recipient.rpartition("@")[2],
        "sender": "app@shop.example",
        "reply": replies[kind],
        "mx": "mx.customer.example",
        "attempt": 1,
        "stage": "deliverer",
        "headers": HEADERS,
    }
    return Event(kind=kind, **{**values, **fields})


def fields_of(data: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """The per-message and the recipient's fields of a DSN's delivery-status part."""
    msg = message_from_bytes(data)
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            payload = part.get_payload()
            assert isinstance(payload, list)
            per_message, per_recipient = (dict(block.items()) for block in payload[:2])
            return per_message, per_recipient
    raise AssertionError("no delivery-status part")


def content_types(data: bytes) -> list[str]:
    msg: Message = message_from_bytes(data)
    return [part.get_content_type() for part in msg.walk()]


async def test_notify_decides_which_dsns_are_sent(running: Running) -> None:
    events = [
        # NEVER: not even the failure DSN (the suppression still happens).
        event(EventKind.BOUNCED, "never@customer.example", dsn_notify=("NEVER",)),
        # SUCCESS, the MX without DSN: a "relayed" notice, with ENVID and ORCPT.
        event(
            EventKind.DELIVERED,
            "relayed@customer.example",
            dsn_notify=("SUCCESS",),
            dsn_envid="QQ314159",
            dsn_orcpt="rfc822;Relayed@Customer.example",
        ),
        # SUCCESS, the MX offered DSN and got the parameters: it owes the notice, not us.
        event(
            EventKind.DELIVERED, "passed@customer.example", dsn_notify=("SUCCESS",), dsn_passed=True
        ),
        # Delivered without SUCCESS asked: nothing.
        event(EventKind.DELIVERED, "quiet@customer.example"),
        # DELAY: one notice on the first deferral, none on the next ones.
        event(EventKind.DEFERRED, "slow@customer.example", dsn_notify=("DELAY", "FAILURE")),
        event(
            EventKind.DEFERRED, "slow@customer.example", dsn_notify=("DELAY", "FAILURE"), attempt=2
        ),
        # A deferral without DELAY asked: nothing.
        event(EventKind.DEFERRED, "waiting@customer.example"),
        # The null sender never gets a DSN, whatever was asked.
        event(EventKind.DELIVERED, "null@customer.example", sender="", dsn_notify=("SUCCESS",)),
        # Last (same key, so processed last): a failure with NOTIFY absent gets its DSN.
        event(EventKind.BOUNCED, "last@customer.example", dsn_ret="HDRS", dsn_envid="E-1"),
    ]
    await running.bus.publish([EVENTS.out(e) for e in events])
    dsns = await wait_for(
        running.bus,
        OUTBOUND,
        lambda rs: any(b"last@customer.example" in r.data for r in rs if isinstance(r, Delivery)),
    )
    by_recipient: dict[str, Delivery] = {}
    for dsn in dsns:
        assert isinstance(dsn, Delivery) and dsn.is_dsn and dsn.mail_from == ""
        assert dsn.rcpt_to == ("app@shop.example",)
        _, per_recipient = fields_of(dsn.data)
        recipient = per_recipient["Final-Recipient"].partition(";")[2].strip()
        assert recipient not in by_recipient, f"two DSNs about {recipient}"
        by_recipient[recipient] = dsn
    assert sorted(by_recipient) == [
        "last@customer.example",
        "relayed@customer.example",
        "slow@customer.example",
    ]

    per_message, per_recipient = fields_of(by_recipient["relayed@customer.example"].data)
    assert per_message["Original-Envelope-Id"] == "QQ314159"
    assert per_recipient["Original-Recipient"] == "rfc822;Relayed@Customer.example"
    assert (per_recipient["Action"], per_recipient["Status"]) == ("relayed", "2.0.0")

    _, per_recipient = fields_of(by_recipient["slow@customer.example"].data)
    assert (per_recipient["Action"], per_recipient["Status"]) == ("delayed", "4.7.1")

    last = by_recipient["last@customer.example"].data
    per_message, per_recipient = fields_of(last)
    assert per_message["Original-Envelope-Id"] == "E-1"
    assert (per_recipient["Action"], per_recipient["Status"]) == ("failed", "5.1.1")
    assert "Original-Recipient" not in per_recipient
    assert "text/rfc822-headers" in content_types(last)  # RET=HDRS
    report = parse_message(last)  # our own DSN reads back as one
    assert report.kind is ReportKind.DSN


def test_ret_full_returns_the_headers_and_says_why() -> None:
    # The events carry the header block only: RET=FULL cannot return the body.
    policy = DsnPolicy(include_headers=False)
    full = build_dsn(event(EventKind.BOUNCED, "x@customer.example", dsn_ret="FULL"), policy, 1.0)
    assert "text/rfc822-headers" in content_types(full)
    assert b"only its header is kept" in full
    assert b"order 42" in full
    # RET absent: the policy decides (here: no headers).
    plain = build_dsn(event(EventKind.BOUNCED, "x@customer.example"), policy, 1.0)
    assert "text/rfc822-headers" not in content_types(plain)
