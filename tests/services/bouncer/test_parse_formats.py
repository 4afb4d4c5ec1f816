"""Golden tests for bounce formats the parser used to miss (issue 19, item 2).

Each fixture in tests/data/bounces was written by the project in the style of the MTA
named in its file name; the inline messages below are too.
"""

from __future__ import annotations

from pathlib import Path

from services.bouncer.cli import classify_bytes
from services.bouncer.dsn import parse_field_blocks
from services.bouncer.parse import parse_message
from services.bouncer.report import ReportKind

DATA = Path(__file__).resolve().parents[2] / "data" / "bounces"


def _lines(name: str) -> list[tuple[str, str, str, bool]]:
    lines = classify_bytes((DATA / name).read_bytes())
    return [(ln["kind"], ln["recipient"], ln["status"], ln["permanent"]) for ln in lines]


def test_dsn_blocks_without_blank_lines_give_every_recipient() -> None:
    assert _lines("domino_dsn_blocks_without_blank_lines.eml") == [
        ("dsn", "h.berger@mfg-partner.example", "5.1.1", True),
        ("dsn", "k.lindqvist@mfg-partner.example", "5.1.1", True),
        ("dsn", "s.okafor@mfg-partner.example", "5.2.2", True),
    ]
    report = parse_message((DATA / "domino_dsn_blocks_without_blank_lines.eml").read_bytes())
    # The per-message block has no blank line after it either: its fields stay its own.
    assert report.reporting_mta == "gw1.mfg-partner.example"
    assert "mailbox s.okafor is full" in report.recipients[2].diagnostic
    assert "not listed in Domino Directory" in report.recipients[0].diagnostic


def test_base64_delivery_status_gives_every_recipient() -> None:
    assert _lines("gateway_dsn_base64_three_recipients.eml") == [
        ("dsn", "ana.silva@hosting-customer.example", "5.1.1", True),
        ("dsn", "b.novak@hosting-customer.example", "5.1.1", True),
        ("dsn", "c.tanaka@hosting-customer.example", "4.2.2", False),
    ]
    report = parse_message((DATA / "gateway_dsn_base64_three_recipients.eml").read_bytes())
    assert report.reporting_mta == "relay2.hosting-co.example"
    assert [r.smtp_code for r in report.recipients] == [550, 550, 452]


_WHITESPACE_SEPARATED = (
    "Return-Path: <>\n"
    "From: MAILER-DAEMON@mx.sender.example\n"
    "To: b+token@bounces.postline.test\n"
    "Subject: Delivery Status Notification (Failure)\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\n'
    "\n"
    "--b1\n"
    "Content-Type: text/plain\n"
    "\n"
    "Delivery to these recipients failed.\n"
    "\n"
    "--b1\n"
    "Content-Type: message/delivery-status\n"
    "\n"
    "Reporting-MTA: dns; mx.sender.example\n"
    "  \n"
    "Final-Recipient: rfc822; first@one.example\n"
    "Action: failed\n"
    "Status: 5.1.1\n"
    " \t\n"
    "Final-Recipient: rfc822; second@two.example\n"
    "Action: failed\n"
    "Status: 5.1.1\n"
    "  \n"
    "Final-Recipient: rfc822; third@three.example\n"
    "Action: delayed\n"
    "Status: 4.4.1\n"
    "\n"
    "--b1--\n"
)


def test_blocks_separated_by_whitespace_lines_give_every_recipient() -> None:
    report = parse_message(_WHITESPACE_SEPARATED.encode())
    assert report.kind is ReportKind.DSN
    got = [(r.recipient, r.action, r.status) for r in report.recipients]
    assert got == [
        ("first@one.example", "failed", "5.1.1"),
        ("second@two.example", "failed", "5.1.1"),
        ("third@three.example", "delayed", "4.4.1"),
    ]


def test_field_blocks_split_on_a_new_recipient_only_for_dsn_fields() -> None:
    text = "Final-Recipient: rfc822; a@x.example\nAction: failed\n"
    text += "Original-Recipient: rfc822; b@y.example\nFinal-Recipient: rfc822; b@y.example\n"
    text += "Action: failed\n"
    fields = ("original-recipient", "final-recipient")
    blocks = parse_field_blocks(text, fields)
    assert [b.get("final-recipient") for b in blocks] == [
        "rfc822; a@x.example",
        "rfc822; b@y.example",
    ]
    assert blocks[1]["original-recipient"] == "rfc822; b@y.example"
    # ARF and other callers keep one block per blank-line group.
    assert len(parse_field_blocks(text)) == 1
