"""Feedback reports (RFC 5965) that do not name the recipient in Original-Rcpt-To.

Providers redact it (RFC 6590) or leave it out; the complaint must still land on the right
recipient, the one our VERP return path names, and never on an address the attached
original's headers show (a list address, a Bcc'd mail's To:). Through the running bouncer:
real SMTP intake, embedded bus. Self-made reports with invented addresses.
"""

from __future__ import annotations

import asyncio
import smtplib
from typing import cast

from services.bouncer.cli import classify_bytes
from services.bouncer.parse import parse_message
from services.bouncer.report import ReportKind
from shared.wire.records import Event, EventKind, Record, Suppression, SuppressionReason
from shared.wire.tokens import verp_address
from shared.wire.topics import EVENTS, SUPPRESSIONS, Topic
from tests.services.bouncer.conftest import BOUNCE_DOMAIN, SECRET, Running
from tests.services.bouncer.conftest import wait_for_records as wait_for

MSGID = "fedcba9876543210fedcba9876543210"
READER = "reader.one@mailbox-provider.example"


def arf(rcpt: str, feedback_fields: str, original: str | None) -> bytes:
    """A feedback report to ``rcpt`` with ``feedback_fields`` and, if given, the original."""
    parts = [
        "Content-Type: text/plain\r\n\r\nThis is a spam report for a message you sent.\r\n",
        "Content-Type: message/feedback-report\r\n\r\n" + feedback_fields.replace("\n", "\r\n"),
    ]
    if original is not None:
        parts.append("Content-Type: message/rfc822\r\n\r\n" + original.replace("\n", "\r\n"))
    body = "".join(f"--arf7\r\n{part}\r\n" for part in parts) + "--arf7--\r\n"
    head = (
        "From: Complaints <fbl@feedback.mailbox-provider.example>\r\n"
        f"To: {rcpt}\r\n"
        "Subject: complaint about a message\r\n"
        "Message-ID: <fbl-0001@feedback.mailbox-provider.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="arf7"\r\n\r\n'
    )
    return (head + body).encode()


FIELDS = """\
Feedback-Type: abuse
User-Agent: ProviderFBL/1.0
Version: 1
Original-Mail-From: <b+x@bounces.postline.test>
Reporting-MTA: dns; fbl.mailbox-provider.example
Source-IP: 192.0.2.25
"""

LIST_ORIGINAL = """\
From: Shop <news@shop.example>
To: Winter list <winter-list@shop.example>
Subject: Winter offers
Message-ID: <winter-0002@shop.example>

Offers.
"""


def send(port: int, rcpt: str, data: bytes) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("fbl.mailbox-provider.example")
        client.mail("<>")
        client.rcpt(rcpt)
        code, _ = client.data(data)
        return code


async def complaint(running: Running, data_for: str, fields: str, original: str | None) -> Event:
    rcpt = verp_address("b", BOUNCE_DOMAIN, MSGID, data_for, SECRET)
    code = await asyncio.to_thread(send, running.smtp_port, rcpt, arf(rcpt, fields, original))
    assert code == 250
    (event,) = await wait_for(running.bus, cast("Topic[Record]", EVENTS), lambda rs: len(rs) >= 1)
    assert isinstance(event, Event)
    return event


async def suppressed(running: Running) -> list[Suppression]:
    records = await wait_for(
        running.bus, cast("Topic[Record]", SUPPRESSIONS), lambda rs: len(rs) >= 1
    )
    return [r for r in records if isinstance(r, Suppression)]


def unattributable(running: Running) -> float:
    value = running.ctx.registry.get_sample_value(
        "postline_bouncer_rejected_reports_total", {"reason": "unattributable"}
    )
    return 0.0 if value is None else value


async def test_recipient_comes_from_verp_not_from_the_original_to(running: Running) -> None:
    event = await complaint(running, READER, FIELDS, LIST_ORIGINAL)
    assert (event.kind, event.recipient, event.message_id) == (
        EventKind.COMPLAINED,
        READER,
        MSGID,
    )
    assert "winter-list@shop.example" in event.detail  # what the report showed is kept
    (record,) = await suppressed(running)
    assert (record.address, record.reason) == (READER, SuppressionReason.COMPLAINT)
    # The complaint's proof: the method and the report's own Message-ID, for the message.
    assert (record.method, record.proof, record.message_id) == (
        "arf",
        "<fbl-0001@feedback.mailbox-provider.example>",
        MSGID,
    )
    assert unattributable(running) == 0


async def test_report_without_any_recipient_is_attributed_by_verp(running: Running) -> None:
    """No Original-Rcpt-To and no original attached (both redacted away)."""
    event = await complaint(running, READER, FIELDS, None)
    assert (event.kind, event.recipient) == (EventKind.COMPLAINED, READER)
    (record,) = await suppressed(running)
    assert (record.address, record.reason) == (READER, SuppressionReason.COMPLAINT)


async def test_redacted_original_rcpt_to_is_never_suppressed(running: Running) -> None:
    fields = FIELDS + "Original-Rcpt-To: <redacted@mailbox-provider.example>\n"
    event = await complaint(running, READER, fields, LIST_ORIGINAL)
    assert (event.kind, event.recipient) == (EventKind.COMPLAINED, READER)
    (record,) = await suppressed(running)
    assert record.address == READER


async def test_report_naming_nobody_who_failed_is_counted_unattributable(
    running: Running,
) -> None:
    """A DSN at a VERP address saying only "delivered": no recipient to act on."""
    rcpt = verp_address("b", BOUNCE_DOMAIN, MSGID, READER, SECRET)
    dsn = (
        "From: MAILER-DAEMON@mx.mailbox-provider.example\r\n"
        f"To: {rcpt}\r\n"
        "Subject: Delivery Status Notification (Success)\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="d1"\r\n\r\n'
        "--d1\r\nContent-Type: text/plain\r\n\r\nDelivered.\r\n"
        "--d1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.mailbox-provider.example\r\n\r\n"
        f"Final-Recipient: rfc822; {READER}\r\nAction: delivered\r\nStatus: 2.0.0\r\n"
        "--d1--\r\n"
    ).encode()
    code = await asyncio.to_thread(send, running.smtp_port, rcpt, dsn)
    assert code == 250
    assert unattributable(running) == 1
    assert await running.bus.read_table(SUPPRESSIONS.name) == {}
    assert await running.bus.read_table(EVENTS.name) == {}


def test_parsed_alone_a_report_without_recipient_names_nobody() -> None:
    """Without the VERP address (``postline bounce classify``) nobody is blamed."""
    raw = arf("fbl-inbox@shop.example", FIELDS, None)
    report = parse_message(raw)
    assert (report.kind, report.recipients) == (ReportKind.COMPLAINT, ())
    (line,) = classify_bytes(raw)
    assert (line["kind"], line["recipient"], line["permanent"]) == ("complaint", None, None)


def test_parsed_alone_the_original_to_is_the_recipient() -> None:
    raw = arf(
        "fbl-inbox@shop.example",
        FIELDS,
        LIST_ORIGINAL.replace("Winter list <winter-list@shop.example>", READER),
    )
    report = parse_message(raw)
    assert [r.recipient for r in report.recipients] == [READER]
    assert report.original_message_id == "<winter-0002@shop.example>"
