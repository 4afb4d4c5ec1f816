"""Golden fixtures (tests/data/bounces, written by the project) through parse + classify."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.bouncer.cli import classify_bytes
from services.bouncer.config import DsnPolicy
from services.bouncer.dsngen import build_dsn
from services.bouncer.parse import parse_message
from services.bouncer.report import ReportKind
from shared.wire.records import Event, EventKind, SmtpReply

DATA = Path(__file__).resolve().parents[2] / "data" / "bounces"

# file -> (kind, recipient, status, permanent, class)
GOLDEN = {
    "postfix_dsn_user_unknown.eml": ("dsn", "nobody@customer.example", "5.1.1", True, "hard"),
    "gmail_dsn_over_quota.eml": ("dsn", "full.box@gmail.com", "4.2.2", False, "soft"),
    "o365_dsn_recipient_not_found.eml": ("dsn", "gone@contoso.com", "5.4.1", True, "hard"),
    "exim_failed_recipients.eml": ("bounce", "ghost@isp-customer.example", "5.1.1", True, "hard"),
    "qmail_no_mailbox.eml": ("bounce", "former.user@oldhost.example", "5.1.1", True, "hard"),
    "sendmail_warning_delayed.eml": ("bounce", "prof.x@dept.university.example", "", False, "soft"),
    "yahoo_text_no_account.eml": ("bounce", "lost.soul@yahoo.com", "", True, "hard"),
    "arf_abuse_yahoo.eml": ("complaint", "annoyed@yahoo.com", "", False, "complaint"),
    "autoreply_vacation.eml": ("auto_reply", "jane@customer.example", "", False, "auto_reply"),
    "autoreply_rfc3834_only.eml": ("auto_reply", "support@vendor.example", "", False, "auto_reply"),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_fixture(name: str) -> None:
    lines = classify_bytes((DATA / name).read_bytes())
    assert len(lines) == 1
    line = lines[0]
    got = (line["kind"], line["recipient"], line["status"], line["permanent"], line["class"])
    assert got == GOLDEN[name]


def test_dsn_fields_are_read() -> None:
    report = parse_message((DATA / "postfix_dsn_user_unknown.eml").read_bytes())
    assert report.reporting_mta == "mx1.shop.example"
    assert report.original_message_id == "<autumn-2026-001@shop.example>"
    (status,) = report.recipients
    assert status.remote_mta == "mail.customer.example"
    assert status.smtp_code == 550
    assert "User unknown in virtual mailbox table" in status.diagnostic


def test_gmail_remote_mta_is_read_without_comment() -> None:
    report = parse_message((DATA / "gmail_dsn_over_quota.eml").read_bytes())
    assert report.recipients[0].remote_mta == "gmail-smtp-in.l.google.com"


def test_arf_reads_feedback_type_and_reporter() -> None:
    report = parse_message((DATA / "arf_abuse_yahoo.eml").read_bytes())
    assert report.kind is ReportKind.COMPLAINT
    assert report.feedback_type == "abuse"
    assert report.reporting_mta == "mta5.mail.yahoo.com"


def test_human_reply_is_not_a_bounce() -> None:
    report = parse_message((DATA / "human_reply.eml").read_bytes())
    assert report.kind is ReportKind.OTHER
    assert report.recipients == ()


def test_generated_dsn_parses_back() -> None:
    event = Event(
        kind=EventKind.BOUNCED,
        message_id="ab" * 16,
        at=1_763_000_000.0,
        recipient="nobody@customer.example",
        sender="news@shop.example",
        reply=SmtpReply(code=550, enhanced="5.1.1", text="User unknown"),
        mx="mail.customer.example",
        headers=b"From: news@shop.example\r\nSubject: Hello\r\nMessage-ID: <m1@shop.example>\r\n",
    )
    policy = DsnPolicy(postmaster="postmaster@relay.test", reporting_mta="relay.test")
    raw = build_dsn(event, policy, event.at)
    report = parse_message(raw)
    assert report.kind is ReportKind.DSN
    assert report.reporting_mta == "relay.test"
    assert report.original_message_id == "<m1@shop.example>"
    (status,) = report.recipients
    assert (status.recipient, status.action, status.status) == (
        "nobody@customer.example",
        "failed",
        "5.1.1",
    )
    assert status.remote_mta == "mail.customer.example"
    assert status.smtp_code == 550
    assert b"Auto-Submitted: auto-replied" in raw
