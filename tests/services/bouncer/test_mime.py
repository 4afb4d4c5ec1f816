"""The bouncer's parsed message: cached header and content-type reads stay right."""

from __future__ import annotations

import email
from email.message import Message
from email.policy import compat32
from pathlib import Path

from services.bouncer.mime import BounceMessage, parse_bytes, parse_text
from services.bouncer.parse import parse_message
from services.bouncer.report import ReportKind

_FIXTURES = Path(__file__).resolve().parents[2] / "data" / "bounces"

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
    assert (msg.get_content_charset(), msg.get_content_charset("x")) == (None, "x")
    assert msg.get("subject") == "Undelivered Mail Returned to Sender"
    msg.replace_header("Subject", "Changed")
    msg.replace_header("Content-Type", "text/plain; charset=ISO-2022-JP")
    assert (msg.get("Subject"), msg.get_content_type()) == ("Changed", "text/plain")
    assert msg.get_content_charset() == "iso-2022-jp"
    assert "SUBJECT" in msg and "X-Note" not in msg
    del msg["Subject"]
    assert msg.get("Subject", "none") == "none"
    assert "subject" not in msg
    msg["Subject"] = "Again"
    msg.add_header("X-Note", "one", kind="a")
    assert (msg["subject"], msg.get("x-note")) == ("Again", 'one; kind="a"')
    msg.set_raw("X-Other", "two")
    assert msg.get("X-OTHER") == "two"
    assert "x-other" in msg
    part = BounceMessage()
    assert part.get_content_type() == "text/plain"
    part.set_default_type("message/rfc822")
    assert part.get_content_type() == "message/rfc822"


def _tree(msg: Message) -> tuple[object, ...]:
    payload = vars(msg).get("_payload")
    return (
        tuple(msg.raw_items()),
        msg.get_unixfrom(),
        msg.get_default_type(),
        msg.preamble,
        msg.epilogue,
        tuple(_tree(p) for p in payload) if isinstance(payload, list) else payload,
    )


_NESTED = (
    "From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n"
    "From: MAILER-DAEMON@mx.example.net\n"
    "Subject: folded\n"
    "  over two lines\n"
    "X-Empty:\n"
    ":no name\n"
    'Content-Type: multipart/mixed; boundary="outer"\n'
    "\n"
    "preamble line\n"
    "--outer\n"
    'Content-Type: multipart/alternative; boundary="inner"\n'
    "\n"
    "--inner\n"
    "Content-Type: text/plain\n"
    "\n"
    "plain\n"
    "\n"
    "--inner\n"
    "Content-Type: text/html\n"
    "\n"
    "<p>html</p>\n"
    "--inner--\n"
    "inner epilogue\n"
    "--outer  \n"
    'Content-Type: multipart/digest; boundary="dig"\n'
    "\n"
    "--dig\n"
    "\n"
    "From: a@example.org\n"
    "\n"
    "first digest message\n"
    "--dig\n"
    "Content-Type: text/plain\n"
    "\n"
    "second\n"
    "--dig--\n"
    "--outer\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: shop@example.org\n"
    'Content-Type: multipart/mixed; boundary="sent"\n'
    "\n"
    "--sent\n"
    "\n"
    "body of the sent message\n"
    "--sent--\n"
    "\n"
    "--outer\n"
    "Content-Type: message/delivery-status\n"
    "\n"
    "Reporting-MTA: dns; mx.example.net\n"
    "\n"
    "\n"
    "Final-Recipient: rfc822; b@example.net\n"
    "Status: 5.1.1\n"
    "--outer--\n"
    "epilogue\n"
)

_ODDITIES = {
    "nested, digest, rfc822, delivery-status": _NESTED,
    "crlf": _NESTED.replace("\n", "\r\n"),
    "mixed line endings": _NESTED.replace("plain\n", "plain\r\n"),
    "no close boundary": _NESTED.split("--outer--", maxsplit=1)[0],
    "no start boundary": _NESTED.replace("--outer\n", "--other\n").replace("--outer  \n", ""),
    "doubled boundary": _NESTED.replace("--outer  \n", "--outer\n--outer\n"),
    "no blank line after headers": "From: a@example.org\nSubject: x\nbody without a gap\n",
    "continuation first": " folded first\nFrom: a@example.org\n\nbody\n",
    "headers only": "From: a@example.org\nSubject: x",
    "no headers": "\nbody only\n",
    "empty": "",
    "misplaced envelope line": "From: a@example.org\nFrom b@example.org Mon\n\nbody\n",
    "same boundary nested": _NESTED.replace('boundary="inner"', 'boundary="outer"'),
    "multipart without boundary": "Content-Type: multipart/mixed\n\n--x\n\nbody\n--x--\n",
    "undecoded bytes": "Subject: caf\udcc3\udca9\n\n\udcc3\udca9t\udcc3\udca9\n",
    "delivery-status oddities": (
        "Content-Type: message/delivery-status\n\n"
        "\nReporting-MTA: dns; a\nnot a field line\n\n\n\nAction: failed\n\n"
    ),
    "empty delivery-status": "Content-Type: message/delivery-status\n\n",
    "delivery-status without a final line ending": (
        "Content-Type: message/delivery-status\n\nAction: failed\n\nStatus: 5.0.0"
    ),
}


def test_every_tree_is_the_standard_parsers() -> None:
    for name, text in _ODDITIES.items():
        ours = parse_text(text)
        theirs = email.message_from_string(text, policy=compat32)
        assert (name, _tree(ours)) == (name, _tree(theirs))
        raw = text.encode("ascii", errors="surrogateescape")
        assert (name, _tree(parse_bytes(raw))) == (name, _tree(theirs))


def test_the_repositorys_bounce_fixtures_parse_as_the_standard_parser_does() -> None:
    for path in sorted(_FIXTURES.glob("*.eml")):
        raw = path.read_bytes()
        theirs = email.message_from_bytes(raw, policy=compat32)
        assert (path.name, _tree(parse_bytes(raw))) == (path.name, _tree(theirs))
        crlf = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        theirs = email.message_from_bytes(crlf, policy=compat32)
        assert (path.name, _tree(parse_bytes(crlf))) == (path.name, _tree(theirs))


def test_parts_nested_past_the_recursion_limit_are_no_report() -> None:
    # The parse recurses per nesting level, as the standard library's does.
    raw = b"Content-Type: message/rfc822\n\n" * 5000 + b"Subject: x\n\nbody\n"
    report = parse_message(raw)
    assert (report.kind, report.parser) == (ReportKind.OTHER, "too-deep")
    shallow = b"Content-Type: message/rfc822\n\n" * 50 + b"Subject: x\n\nbody\n"
    assert parse_message(shallow).parser != "too-deep"
