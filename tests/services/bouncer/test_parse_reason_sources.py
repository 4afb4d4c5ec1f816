"""Golden tests: the reason of a bounce that writes it outside the recipient's diagnostic.

Each fixture in tests/data/bounces was written by the project in the style of the MTA
named in its file name (see the README there); the inline messages below are too. Per
recipient: kind, recipient, reported status, delivery status (the reported one, else
derived), whether it was derived, permanent, class and reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.bouncer.cli import classify_bytes
from services.bouncer.parse import parse_message

DATA = Path(__file__).resolve().parents[2] / "data" / "bounces"

Line = tuple[str, str, str, str, bool, bool, str, str]

GOLDEN: dict[str, list[Line]] = {
    # RFC 3464 2.3.4 Status with a comment and no Diagnostic-Code (Sun/iPlanet Messaging).
    "sun_messaging_dsn_status_comment.eml": [
        ("dsn", "r.olsen@mailhost.example", "5.0.0", "5.0.0", False, True, "soft", "mailboxfull"),
    ],
    # The reason only in the human-readable part (CommuniGate Pro, OpenSMTPD).
    "communigate_dsn_reason_in_notification.eml": [
        (
            "dsn",
            "mara.kalnina@cg-isp.example",
            "5.0.0",
            "5.0.0",
            False,
            True,
            "hard",
            "userunknown",
        ),
    ],
    "opensmtpd_dsn_reason_in_notification.eml": [
        (
            "dsn",
            "lena@no-such-domain.example",
            "5.0.0",
            "5.0.0",
            False,
            True,
            "hard",
            "hostunknown",
        ),
    ],
    # qmail names the host it tried by IP: "4.3.2.1" is not status 4.3.2.
    "qmail_remote_host_said_after_ip.eml": [
        ("bounce", "t.berg@partner.example", "5.7.1", "5.7.1", False, True, "hard", "norelaying"),
    ],
    # No code anywhere: the status is derived from the reason (sisimai's way) and marked.
    "qmail_host_not_found.eml": [
        ("bounce", "anna@typo-domian.example", "", "5.1.2", True, True, "hard", "hostunknown"),
    ],
    # The reason before the address on its line (Ipswitch SMTP32).
    "smtp32_invalid_final_delivery_userid.eml": [
        ("bounce", "k.sato@smtp32-host.example", "", "5.1.1", True, True, "hard", "userunknown"),
    ],
    "smtp32_delivery_failed_attempts.eml": [
        ("bounce", "j.reyes@slow-remote.example", "", "5.4.7", True, True, "soft", "expired"),
    ],
    # The reason once, above the list of addresses, for all of them (Netscape Messaging).
    "netscape_messaging_not_delivered_within_days.eml": [
        ("bounce", "p.ng@far-office.example", "", "5.4.7", True, True, "soft", "expired"),
        ("bounce", "q.li@far-office.example", "", "5.4.7", True, True, "soft", "expired"),
    ],
    # A directory-lookup mailer naming a bare mailbox (phquery).
    "phquery_no_matches_to_nameserver_query.eml": [
        ("bounce", "jdoe@campus.example", "", "5.1.1", True, True, "hard", "userunknown"),
    ],
}


def _lines(raw: bytes) -> list[Line]:
    return [
        (
            line["kind"],
            line["recipient"],
            line["status"],
            line["delivery_status"],
            line["status_derived"],
            line["permanent"],
            line["class"],
            line["reason"],
        )
        for line in classify_bytes(raw)
    ]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_reason_source(name: str) -> None:
    assert _lines((DATA / name).read_bytes()) == GOLDEN[name]


def test_the_notification_paragraph_gives_the_reply_code_but_not_the_status() -> None:
    # The report's generic Status stays (it is what the report said); the remote's reply,
    # quoted in the notification only, is read as the recipient's reply code.
    report = parse_message((DATA / "communigate_dsn_reason_in_notification.eml").read_bytes())
    (status,) = report.recipients
    assert (status.status, status.smtp_code) == ("5.0.0", 550)
    assert "unknown user account" in status.diagnostic


def test_a_diagnostic_of_the_fields_is_not_replaced_by_the_notification() -> None:
    raw = _communigate_dsn(
        "Failed to deliver to '<ivo@cg-isp.example>'\nMailbox is full\n",
        "Status: 5.0.0\nDiagnostic-Code: smtp; 550 5.1.1 ivo: user unknown\n",
    )
    (line,) = classify_bytes(raw)
    assert (line["reason"], line["diagnostic"]) == ("userunknown", "550 5.1.1 ivo: user unknown")


def test_a_specific_status_without_words_is_already_a_reason() -> None:
    raw = _communigate_dsn(
        "Failed to deliver to '<ivo@cg-isp.example>'\nMailbox is full\n", "Status: 5.1.1\n"
    )
    (line,) = classify_bytes(raw)
    assert (line["reason"], line["diagnostic"]) == ("userunknown", "")


def test_a_missing_header_refused_in_the_notification() -> None:
    # CommuniGate Pro's refusal of a message without a To: header (RFC 5322 3.6).
    raw = _communigate_dsn(
        "Failed to deliver to '<ivo@cg-isp.example>'\n"
        "Messages without To: fields are not accepted here\n",
        "Status: 5.0.0\n",
    )
    (line,) = classify_bytes(raw)
    assert (line["reason"], line["class"], line["delivery_status"]) == (
        "notcompliantrfc",
        "block",
        "5.0.0",
    )


def test_a_status_field_holding_a_reply_and_its_words() -> None:
    # "Status: 553 Exceeded ..." (a reply where the status belongs): no status, the reply
    # code and words are the diagnostic, and the status is derived from them.
    raw = _communigate_dsn(
        "Your message was not delivered.\n", "Status: 553 Exceeded maximum inbound message size\n"
    )
    (line,) = classify_bytes(raw)
    assert (line["status"], line["smtp_code"], line["reason"]) == ("", 553, "mesgtoobig")
    assert (line["delivery_status"], line["status_derived"]) == ("5.3.4", True)


def test_an_empty_status_takes_the_notification_s_words() -> None:
    raw = _communigate_dsn(
        "Failed to deliver to '<ivo@cg-isp.example>'\n"
        "LOCAL module(account ivo) reports:\n account is full (quota exceeded)\n",
        "Status:\n",
    )
    (line,) = classify_bytes(raw)
    assert (line["reason"], line["delivery_status"], line["status_derived"]) == (
        "mailboxfull",
        "5.2.2",
        True,
    )


def test_the_line_prefix_is_read_only_when_the_paragraph_names_no_reason() -> None:
    # "Undeliverable Address:" is a label: the over-quota paragraph decides, not the
    # "undeliverable address" (user unknown) words before the address.
    raw = _text_bounce(
        "Undeliverable Address: ella@pop-host.example\nReason: The recipient is over disk quota.\n"
    )
    (line,) = classify_bytes(raw)
    assert (line["recipient"], line["reason"], line["class"]) == (
        "ella@pop-host.example",
        "mailboxfull",
        "soft",
    )


def test_the_words_above_the_addresses_name_the_reason_for_all() -> None:
    # AOL: the screen name refuses mail from this sender.
    raw = _text_bounce(
        "Your mail to the following recipients could not be delivered because they are "
        "not accepting mail from news@shop.example:\n\n  amy.w@aol-like.example\n"
    )
    (line,) = classify_bytes(raw)
    assert (line["recipient"], line["reason"]) == ("amy.w@aol-like.example", "notaccept")


def test_a_bounce_that_names_no_reason_stays_undefined() -> None:
    # Gmail's old text notice gives the address and nothing else: undefined is the truth,
    # and the status is still present (5.0.0, derived).
    raw = _text_bounce(
        "This is an automatically generated Delivery Status Notification\n\n"
        "Delivery to the following recipient failed permanently:\n\n"
        "     bo.x@gmail.com\n"
    )
    (line,) = classify_bytes(raw)
    assert (line["reason"], line["class"], line["delivery_status"], line["status_derived"]) == (
        "undefined",
        "unknown",
        "5.0.0",
        True,
    )


def test_the_header_summary_of_the_notification_is_not_the_recipient_s_paragraph() -> None:
    # Sun/PMDF reports summarise the returned message's header fields first: its Subject
    # must not be read as the recipient's reason, the paragraph about the recipient is.
    raw = _communigate_dsn(
        "This report relates to a message you sent with the following header fields:\n\n"
        "  To: ivo@cg-isp.example\n"
        "  Subject: Is your mailbox full? Get more space\n\n"
        "Your message cannot be delivered to the following recipients:\n\n"
        "  Recipient address: ivo@cg-isp.example\n"
        "  Reason: no such user\n",
        "Status: 5.0.0\n",
    )
    (line,) = classify_bytes(raw)
    assert (line["reason"], line["diagnostic"]) == ("userunknown", "Reason: no such user")


def _communigate_dsn(notification: str, fields: str) -> bytes:
    return (
        "Return-Path: <>\n"
        "From: MAILER-DAEMON@mail.cg-isp.example\n"
        "To: b+token@bounces.postline.test\n"
        "Subject: Undeliverable mail\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="cg"\n'
        "\n--cg\nContent-Type: text/plain\n\n"
        f"{notification}\n"
        "--cg\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mail.cg-isp.example\n\n"
        "Original-Recipient: rfc822;<ivo@cg-isp.example>\n"
        "Final-Recipient: rfc822;<ivo@cg-isp.example>\n"
        f"Action: failed\n{fields}\n"
        "--cg--\n"
    ).encode()


def _text_bounce(body: str) -> bytes:
    return (
        "Return-Path: <>\n"
        "From: Mail Delivery Subsystem <MAILER-DAEMON@relay.example>\n"
        "To: b+token@bounces.postline.test\n"
        "Subject: Mail Delivery Problem\n"
        "\n" + body
    ).encode()
