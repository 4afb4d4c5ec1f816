"""The tolerant paths of the DSN reader and each address finder of the text-bounce reader.

Self-made messages (invented addresses, written for these tests), each damaged in one way a
real MTA damages them, read through parse + classify (``classify_bytes``, what ``postline
bounce classify`` prints and what the intake acts on): the recipient, the class and whether
the failure is permanent, the things a user's suppression list depends on.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from services.bouncer import textbounce, textfinders
from services.bouncer.cli import classify_bytes
from services.bouncer.mime import parse_bytes
from services.bouncer.report import body_text

HEAD = """\
Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.relay-one.example>
To: b+token@bounces.postline.test
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce-0001@mx.relay-one.example>
MIME-Version: 1.0
"""

ORIGINAL = """\
Content-Type: text/rfc822-headers

From: Shop <news@shop.example>
To: someone@elsewhere.example
Subject: Winter offers
Message-ID: <winter-0001@shop.example>
"""


def report(status_part: str, human: str = "Your message could not be delivered.") -> bytes:
    """A multipart/report DSN whose second part is ``status_part`` (its headers included)."""
    text = (
        HEAD
        + 'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\n\n'
        + "--b1\nContent-Type: text/plain\n\n"
        + human
        + "\n\n--b1\n"
        + status_part
        + "\n--b1\n"
        + ORIGINAL
        + "\n--b1--\n"
    )
    return text.encode()


def delivery_status(fields: str) -> str:
    return "Content-Type: message/delivery-status\n\n" + fields


PER_MESSAGE = "Reporting-MTA: dns; mx.relay-one.example\n\n"


def lines(raw: bytes) -> list[dict[str, Any]]:
    return classify_bytes(raw)


def verdict(line: dict[str, Any]) -> tuple[Any, ...]:
    return (line["kind"], line["recipient"], line["status"], line["permanent"], line["class"])


def test_original_recipient_stands_in_for_a_missing_final_recipient() -> None:
    raw = report(
        delivery_status(
            PER_MESSAGE + "Original-Recipient: rfc822; kept.only@orcpt.example\n"
            "Action: failed\nStatus: 5.1.1\n"
            "Diagnostic-Code: smtp; 550 5.1.1 no such user\n"
        )
    )
    (line,) = lines(raw)
    assert verdict(line) == ("dsn", "kept.only@orcpt.example", "5.1.1", True, "hard")
    assert line["original_recipient"] == "kept.only@orcpt.example"


def test_final_recipient_without_address_falls_back_to_x_actual_recipient() -> None:
    raw = report(
        delivery_status(
            PER_MESSAGE + "Final-Recipient: rfc822; undisclosed\n"
            "X-Actual-Recipient: rfc822; real.box@actual.example\n"
            "Action: failed\nStatus: 5.1.1\n"
        )
    )
    (line,) = lines(raw)
    assert verdict(line) == ("dsn", "real.box@actual.example", "5.1.1", True, "hard")


def test_lowercase_and_folded_fields_are_read() -> None:
    raw = report(
        delivery_status(
            "reporting-mta: dns; mx.relay-one.example\n\n"
            "final-recipient: rfc822;\n    folded.rcpt@fold.example\n"
            "action: failed\nstatus: 5.2.2\n"
            "diagnostic-code: smtp; 552 5.2.2 mailbox\n\tis full, try later\n"
            "remote-mta: dns;\n mx.fold.example\n"
        )
    )
    (line,) = lines(raw)
    assert line["recipient"] == "folded.rcpt@fold.example"
    assert line["remote_mta"] == "mx.fold.example"
    assert line["diagnostic"] == "552 5.2.2 mailbox is full, try later"
    assert (line["status"], line["class"]) == ("5.2.2", "soft")  # mailbox full: never hard


def test_a_squeezed_status_code_is_read_as_class_subject_detail() -> None:
    raw = report(
        delivery_status(
            PER_MESSAGE + "Final-Recipient: rfc822; squeezed@codes.example\n"
            "Action: failed\nStatus: 511\n"
        )
    )
    (line,) = lines(raw)
    assert verdict(line) == ("dsn", "squeezed@codes.example", "5.1.1", True, "hard")


def test_a_garbage_status_is_replaced_by_the_diagnostic_s_code() -> None:
    raw = report(
        delivery_status(
            PER_MESSAGE + "Final-Recipient: rfc822; garbled@codes.example\n"
            "Action: failed\nStatus: unknown error\n"
            "Diagnostic-Code: smtp; 550 5.1.1 <garbled@codes.example>: user unknown\n"
        )
    )
    (line,) = lines(raw)
    assert verdict(line) == ("dsn", "garbled@codes.example", "5.1.1", True, "hard")
    assert line["smtp_code"] == 550


def test_a_garbage_status_with_a_temporary_diagnostic_is_no_hard_bounce() -> None:
    raw = report(
        delivery_status(
            PER_MESSAGE + "Final-Recipient: rfc822; later@codes.example\n"
            "Action: delay\nStatus: 9.9\n"
            "Diagnostic-Code: smtp; 451 4.3.0 try again later\n"
        )
    )
    (line,) = lines(raw)
    assert line["action"] == "delayed"  # "delay" is read as RFC 3464 "delayed"
    assert (line["recipient"], line["status"], line["permanent"]) == (
        "later@codes.example",
        "4.3.0",
        False,
    )
    assert line["class"] != "hard"


def test_an_unknown_diagnostic_type_is_kept_whole() -> None:
    raw = report(
        delivery_status(
            PER_MESSAGE + "Final-Recipient: rfc822; typed@codes.example\n"
            "Action: failure\nStatus: 5.1.1\n"
            "Diagnostic-Code: X-Notes; user not listed in directory\n"
        )
    )
    (line,) = lines(raw)
    assert line["action"] == "failed"  # "failure" is read as "failed"
    assert line["diagnostic"] == "X-Notes; user not listed in directory"
    assert verdict(line) == ("dsn", "typed@codes.example", "5.1.1", True, "hard")


def test_of_several_recipient_blocks_a_broken_one_is_skipped() -> None:
    raw = report(
        delivery_status(
            PER_MESSAGE + "Final-Recipient: rfc822; first.gone@multi.example\n"
            "Action: failed\nStatus: 5.1.1\n\n"
            "Final-Recipient: rfc822;\n"  # no address anywhere in the block
            "Action: failed\nStatus: 5.1.1\n\n"
            "Final-Recipient: rfc822; /var/mail/john\n"  # a mailbox path, nobody's address
            "Action: failed\nStatus: 5.2.0\n\n"
            "Final-Recipient: rfc822; third.full@multi.example\n"
            "Action: delayed\nStatus: 4.2.2\n"
        )
    )
    found = lines(raw)
    assert [verdict(line) for line in found] == [
        ("dsn", "first.gone@multi.example", "5.1.1", True, "hard"),
        ("dsn", "third.full@multi.example", "4.2.2", False, "soft"),
    ]


def test_recipient_blocks_without_blank_lines_between_them_are_split() -> None:
    raw = report(
        delivery_status(
            PER_MESSAGE + "Final-Recipient: rfc822; one@packed.example\n"
            "Action: failed\nStatus: 5.1.1\n"
            "Final-Recipient: rfc822; two@packed.example\n"
            "Action: delayed\nStatus: 4.4.1\n"
        )
    )
    assert [verdict(line) for line in lines(raw)] == [
        ("dsn", "one@packed.example", "5.1.1", True, "hard"),
        ("dsn", "two@packed.example", "4.4.1", False, "soft"),
    ]


def test_a_missing_status_is_taken_from_the_diagnostic() -> None:
    raw = report(
        delivery_status(
            PER_MESSAGE + "Final-Recipient: rfc822; nostatus@fields.example\n"
            "Action: failed\n"
            "Diagnostic-Code: smtp; 550 5.1.1 mailbox unavailable\n"
        )
    )
    (line,) = lines(raw)
    assert verdict(line) == ("dsn", "nostatus@fields.example", "5.1.1", True, "hard")


def test_a_quoted_printable_delivery_status_part_is_decoded() -> None:
    raw = report(
        "Content-Type: message/delivery-status\n"
        "Content-Transfer-Encoding: quoted-printable\n\n"
        "Reporting-MTA: dns; mx.relay-one.example\n\n"
        "Final-Recipient: rfc822; qp.box=40encoded.example\n"
        "Action: failed\nStatus: 5.1.1\n"
    )
    (line,) = lines(raw)
    assert verdict(line) == ("dsn", "qp.box@encoded.example", "5.1.1", True, "hard")


def test_fields_in_a_text_part_of_a_report_without_a_status_part_are_read() -> None:
    raw = report(
        "Content-Type: text/plain\n\n"
        "Reporting-MTA: dns; mx.relay-one.example\n\n"
        "Final-Recipient: rfc822; in.text@fields.example\n"
        "Action: failed\nStatus: 5.1.1\n"
    )
    (line,) = lines(raw)
    assert verdict(line) == ("dsn", "in.text@fields.example", "5.1.1", True, "hard")


def test_an_unparseable_status_part_falls_back_to_the_text() -> None:
    raw = report(
        delivery_status("%%% this gateway wrote no fields at all %%%\n"),
        human="The following address failed:\n\n  lost.cause@fallback.example\n"
        "  550 5.1.1 user unknown",
    )
    (line,) = lines(raw)
    assert line["parser"] == "text"
    assert verdict(line) == ("bounce", "lost.cause@fallback.example", "5.1.1", True, "hard")


def test_a_status_part_naming_no_recipient_and_no_text_address_is_not_a_bounce_of_anyone() -> None:
    raw = report(
        delivery_status(PER_MESSAGE + "Action: failed\nStatus: 5.1.1\n"),
        human="Delivery failed.",
    )
    (line,) = lines(raw)
    assert line["recipient"] is None
    assert line["permanent"] is None


# -- text bounces: one message per address finder of textfinders.py --------------------------


HEAD_FROM = "MAILER-DAEMON@mx.relay-two.example"


def text_bounce(body: str, *, extra: str = "", sender: str = HEAD_FROM) -> bytes:
    return (
        "Return-Path: <>\n"
        + f"From: {sender}\n"
        + "To: b+token@bounces.postline.test\n"
        + "Subject: failure notice\n"
        + extra
        + "Content-Type: text/plain\n\n"
        + body
    ).encode()


FINDER_CASES = [
    pytest.param(
        "x-failed-recipients header",
        text_bounce(
            "This message was created automatically by mail delivery software.\n"
            "A message that you sent could not be delivered.\n"
            "  550 5.1.1 mailbox does not exist\n",
            extra="X-Failed-Recipients: header.named@finders.example\n",
        ),
        ("bounce", "header.named@finders.example", "5.1.1", True, "hard"),
    ),
    pytest.param(
        "<addr>: paragraph",
        text_bounce(
            "Hi. This is the program at mx.relay-two.example.\n"
            "I'm afraid I wasn't able to deliver your message to the following address.\n\n"
            "<colon.para@finders.example>:\n"
            "Sorry, no mailbox here by that name. (#5.1.1)\n"
        ),
        ("bounce", "colon.para@finders.example", "5.1.1", True, "hard"),
    ),
    pytest.param(
        "sendmail transcript line",
        text_bounce(
            "   ----- Transcript of session follows -----\n"
            "550 5.1.1 transcript.rcpt@finders.example... User unknown\n"
        ),
        ("bounce", "transcript.rcpt@finders.example", "5.1.1", True, "hard"),
    ),
    pytest.param(
        "addressed to ..., failed",
        text_bounce(
            "Your message addressed to 'addressed.rcpt@finders.example' failed because\n"
            "the mailbox is unknown (550 5.1.1).\n"
        ),
        ("bounce", "addressed.rcpt@finders.example", "5.1.1", True, "hard"),
    ),
    pytest.param(
        "lines after a trigger phrase",
        text_bounce(
            "Delivery to the following recipients failed permanently:\n\n"
            "     trigger.rcpt@finders.example\n\n"
            "Technical details: 550 5.1.1 the account does not exist.\n"
        ),
        ("bounce", "trigger.rcpt@finders.example", "5.1.1", True, "hard"),
    ),
    pytest.param(
        "bare mailbox names after a trigger",
        text_bounce(
            "Your mail could not be delivered to the following:\n\n"
            "\tbarename\n\n"
            "550 5.1.1 no such screen name\n",
            sender="Mail Delivery Subsystem <MAILER-DAEMON@mail.barehost.example>",
        ),
        ("bounce", "barename@barehost.example", "5.1.1", True, "hard"),
    ),
    pytest.param(
        "address beside a rejection",
        text_bounce(
            "Relay log of mx.relay-two.example:\n"
            "RCPT beside.reject@finders.example answered 550 mailbox disabled\n"
            "Please see help@helpdesk.example for anything else.\n"
        ),
        ("bounce", "beside.reject@finders.example", "", True, "hard"),
    ),
    pytest.param(
        "the few addresses of a short bounce",
        text_bounce("User's mailbox is full: <small.box@finders.example>\n"),
        ("bounce", "small.box@finders.example", "", True, "soft"),
    ),
]


@pytest.mark.parametrize(
    ("finder", "raw", "expected"), FINDER_CASES, ids=lambda v: v if isinstance(v, str) else ""
)
def test_each_address_finder(finder: str, raw: bytes, expected: tuple[Any, ...]) -> None:
    (line,) = lines(raw)
    assert line["parser"] == "text", finder
    assert verdict(line) == expected


FINDERS = {
    "x-failed-recipients header": "header",
    "<addr>: paragraph": "_colon_paragraphs",
    "sendmail transcript line": "_colon_paragraphs",
    "addressed to ..., failed": "_addressed",
    "lines after a trigger phrase": "_after_triggers",
    "bare mailbox names after a trigger": "_bare_names",
    "address beside a rejection": "_anywhere",
    "the few addresses of a short bounce": "_few_addresses",
}


def first_finder(raw: bytes) -> str:
    """Which finder of textfinders.py answers first for ``raw`` (their order is the module's)."""
    msg = parse_bytes(raw)
    if msg.get("X-Failed-Recipients"):
        return "header"
    text, low = textbounce.bounce_words(body_text(msg))
    excluded = textfinders._excluded(msg, text, low)
    order = (
        textfinders._colon_paragraphs,
        textfinders._addressed,
        textfinders._after_triggers,
        textfinders._bare_names,
        textfinders._anywhere,
        textfinders._few_addresses,
    )
    for finder in order:
        if textfinders._unique(finder(msg, text, low), excluded):
            return finder.__name__
    return "none"


@pytest.mark.parametrize("finder", sorted(FINDERS))
def test_each_message_reaches_the_finder_it_is_written_for(finder: str) -> None:
    (raw,) = [case.values[1] for case in FINDER_CASES if case.values[0] == finder]
    assert isinstance(raw, bytes)
    assert first_finder(raw) == FINDERS[finder]


def test_a_base64_delivery_status_part_is_decoded() -> None:
    fields = (
        PER_MESSAGE + "Final-Recipient: rfc822; b64.box@encoded.example\n"
        "Action: failed\nStatus: 5.1.1\n"
    )
    raw = report(
        "Content-Type: message/delivery-status\n"
        "Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(fields.encode()).decode()
    )
    (line,) = lines(raw)
    assert verdict(line) == ("dsn", "b64.box@encoded.example", "5.1.1", True, "hard")


def test_a_broken_base64_delivery_status_part_is_read_as_it_stands() -> None:
    """Declared base64 but written in clear (a gateway's mistake): the fields still count."""
    raw = report(
        "Content-Type: message/delivery-status\n"
        "Content-Transfer-Encoding: base64\n\n"
        + PER_MESSAGE
        + "Final-Recipient: rfc822; clear.text@encoded.example\n"
        "Action: failed\nStatus: 5.1.1\n"
    )
    (line,) = lines(raw)
    assert verdict(line) == ("dsn", "clear.text@encoded.example", "5.1.1", True, "hard")


def test_a_global_delivery_status_part_with_a_utf8_address_is_read() -> None:
    raw = report(
        "Content-Type: message/global-delivery-status\n\n"
        + PER_MESSAGE
        + "Final-Recipient: utf-8; jörg@umlaut.example\n"
        "Action: failed\nStatus: 5.1.1\n"
    )
    (line,) = lines(raw)
    assert verdict(line) == ("dsn", "jörg@umlaut.example", "5.1.1", True, "hard")


def test_an_unknown_action_word_leaves_the_status_to_decide() -> None:
    raw = report(
        delivery_status(
            PER_MESSAGE + "Final-Recipient: rfc822; odd.action@fields.example\n"
            "Action: bounced\nStatus: 4.2.2\n"
        )
    )
    (line,) = lines(raw)
    assert line["action"] == "bounced"
    assert (line["recipient"], line["permanent"], line["class"]) == (
        "odd.action@fields.example",
        False,
        "soft",
    )
