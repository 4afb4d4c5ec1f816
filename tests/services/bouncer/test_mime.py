"""The bouncer's parsed message: cached header and content-type reads stay right."""

from __future__ import annotations

import email
from email.message import Message
from email.policy import compat32

from services.bouncer.mime import BounceMessage, parse_bytes, parse_text

_REPORT = (
    b"From: MAILER-DAEMON@mx.example.net\n"
    b"To: b+token@bounces.postline.test\n"
    b"Subject: Undelivered Mail Returned to Sender\n"
    b"MIME-Version: 1.0\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n'
    b"\n"
    b"--B\n"
    b"Content-Type: text/plain\n"
    b"\n"
    b"I could not deliver it.\n"
    b"--B\n"
    b"Content-Type: message/delivery-status\n"
    b"\n"
    b"Reporting-MTA: dns; mx.example.net\n"
    b"\n"
    b"Final-Recipient: rfc822; ann@example.net\n"
    b"Action: failed\n"
    b"Status: 5.1.1\n"
    b"--B\n"
    b"Content-Type: message/rfc822\n"
    b"\n"
    b"From: shop@example.org\n"
    b"To: ann@example.net\n"
    b"Subject: hello\n"
    b"\n"
    b"Hi\n"
    b"--B--\n"
)


def _shape(msg: Message) -> list[tuple[str, str, str, str]]:
    return [
        (
            part.get_content_type(),
            str(part.get("Subject", "")),
            str(part.get("from")),
            str(part.get_payload(decode=True)),
        )
        for part in msg.walk()
    ]


def test_the_tree_reads_like_the_standard_librarys() -> None:
    ours = parse_bytes(_REPORT)
    theirs = email.message_from_bytes(_REPORT, policy=compat32)
    assert isinstance(ours, BounceMessage)
    assert all(isinstance(part, BounceMessage) for part in ours.walk())
    assert _shape(ours) == _shape(theirs)
    assert _shape(parse_text(_REPORT.decode())) == _shape(theirs)


def test_a_changed_header_is_read_again() -> None:
    msg = parse_bytes(_REPORT)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get("subject") == "Undelivered Mail Returned to Sender"
    msg.replace_header("Subject", "Changed")
    msg.replace_header("Content-Type", "text/plain")
    assert (msg.get("Subject"), msg.get_content_type()) == ("Changed", "text/plain")
    del msg["Subject"]
    assert msg.get("Subject", "none") == "none"
    msg["Subject"] = "Again"
    msg.add_header("X-Note", "one", kind="a")
    assert (msg["subject"], msg.get("x-note")) == ("Again", 'one; kind="a"')
    msg.set_raw("X-Other", "two")
    assert msg.get("X-OTHER") == "two"
    part = BounceMessage()
    assert part.get_content_type() == "text/plain"
    part.set_default_type("message/rfc822")
    assert part.get_content_type() == "message/rfc822"
