"""Golden tests for older non-standard bounce styles (issue 19, item 2).

Every message here was written by the project in the format of the system named in the
test (its phrases and layout), with invented addresses and text.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.bouncer.cli import classify_bytes
from services.bouncer.report import ADDRESS_RE, find_reply_code
from services.bouncer.textbounce import _NEXT_ADDRESS
from services.bouncer.textfinders import _colon_lines
from services.bouncer.textphrases import ORIGINAL_MARKER, original_start


def _one(raw: bytes) -> dict[str, Any]:
    (line,) = classify_bytes(raw)
    return line


def test_bare_screen_name_is_qualified_with_the_reporting_domain() -> None:
    # AOL style: the daemon lists its own members by screen name, without a domain, and
    # names the sending list in the same sentence (never the failed recipient).
    raw = (
        b"MIME-Version: 1.0\n"
        b'Content-Type: text/plain; charset="iso-8859-1"\n'
        b"Content-Transfer-Encoding: quoted-printable\n"
        b"Subject: Mail Delivery Problem\n"
        b'From: "Mail Delivery Subsystem" <MAILER-DAEMON@Webmail-Co.example>\n'
        b"To: <b+token@bounces.postline.test>\n"
        b"\n"
        b"\n"
        b"Your mail to the following recipients could not be delivered because =\n"
        b"they are not accepting mail from weekly@garden-club.example:\n"
        b"\tmarigold77\n"
    )
    line = _one(raw)
    assert (line["kind"], line["recipient"], line["permanent"]) == (
        "bounce",
        "marigold77@webmail-co.example",
        True,
    )


def test_bare_name_takes_the_domain_an_address_in_the_message_gives_it() -> None:
    # Yale's phquery style: a directory lookup failed for a name; the domain comes from the
    # address that names the same mailbox elsewhere, and a section rule ends the list (the
    # example addresses of the help text below are never recipients).
    raw = (
        b"From: MAILER-DAEMON@relay3.its.example.edu\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: Returned mail - nameserver error report\n"
        b"\n"
        b" --------Message not delivered to the following:\n"
        b"\n"
        b" pgrant    No matches to nameserver query\n"
        b"\n"
        b" --------Error Detail (phquery V4.1):\n"
        b"\n"
        b" The directory found no alias or name matching the one supplied. Try the\n"
        b" full form, e.g. if jo.smith@example.edu fails, try\n"
        b" joanne.q.smith@example.edu, or finger NAME@dir.example.edu.\n"
        b" Mail for pgrant@physics.example.edu was accepted earlier.\n"
    )
    line = _one(raw)
    assert (line["recipient"], line["permanent"]) == ("pgrant@physics.example.edu", True)
    without = raw.replace(b" Mail for pgrant@physics.example.edu was accepted earlier.\n", b"")
    # Without one, the reporting system's organisation owns the mailbox; the reason is the
    # name's own line.
    line = _one(without)
    assert line["recipient"] == "pgrant@example.edu"
    assert line["diagnostic"].startswith("No matches to nameserver query")


def test_a_word_after_a_trigger_that_is_not_a_list_is_no_recipient() -> None:
    # Only a paragraph of bare names counts, and only after a line that ends in a colon.
    raw = (
        b"From: MAILER-DAEMON@mx.provider.example\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: Mail delivery failed\n"
        b"\n"
        b"Your message could not be delivered to the following recipients:\n"
        b"\n"
        b"Please check the address and try again later, or ask your administrator.\n"
    )
    assert _one(raw)["recipient"] is None


def test_addressed_to_sentence_names_the_recipient() -> None:
    # Exim 2 mailstore style: the address is quoted in the sentence that says it failed,
    # and the returned copy below the START OF RETURNED MESSAGE rule names many addresses.
    raw = (
        b"From: Mail Delivery System <Mailer-Daemon@store-4.mail.isp.example>\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: Mail delivery failure\n"
        b"\n"
        b"This message was created automatically by mail delivery\n"
        b"software. A message that you sent could not be delivered\n"
        b"to all of its recipients.\n"
        b"\n"
        b"The following message, addressed to 'tgreen@dialup.isp.example',\n"
        b"failed because it has not been collected after 30 days\n"
        b"\n"
        b"---- START OF RETURNED MESSAGE ----\n"
        b"Received: from relay.isp.example by mailstore for tgreen@dialup.isp.example\n"
        b"From: newsletter@bookshop.example\n"
        b"To: readers@bookshop.example\n"
        b"Reply-To: editor@bookshop.example\n"
        b"Subject: New titles\n"
    )
    line = _one(raw)
    assert (line["recipient"], line["permanent"]) == ("tgreen@dialup.isp.example", True)


def test_address_that_did_not_match_a_directory_is_the_recipient() -> None:
    # LLNL style: a directory's notice names the address in a sentence, then offers a
    # locator entry with another person's address, which is never the recipient.
    raw = (
        b"From: postmaster@lab.example.gov (Automated response from LAB postmaster)\n"
        b"To: b+token@bounces.postline.test\n"
        b'Subject: FAILED MAIL to "rkumar" regarding "Seminar notes"\n'
        b"\n"
        b"The standard form of email address at LAB is lastnameNumber@lab.example.gov\n"
        b"although people may choose another address. The address to\n"
        b"which your message was addressed, rkumar@div.example.gov, did not exactly match\n"
        b"a LAB email address.\n"
        b"\n"
        b'The following locator information may help you reach "rkumar":\n'
        b"\n"
        b"  Ravi P. Kumar          +1 555-0100           kumar7@lab.example.gov\n"
        b"\n"
        b"Original message as received is as follows:\n"
        b"=====================================================\n"
        b">To: rkumar@div.example.gov\n"
        b">From: seminars@college.example\n"
    )
    line = _one(raw)
    assert (line["recipient"], line["permanent"]) == ("rkumar@div.example.gov", True)


def test_mdaemon_warning_subject_and_dash_reason() -> None:
    # MDaemon: "Warning: <addr> - User unknown!" from MDaemon@host, the reason in a text
    # part beside a message/rfc822 part.
    raw = (
        b"Return-Path: <MDaemon@mail.coop-net.example>\n"
        b"From: MDaemon@mail.coop-net.example\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: Warning: lucia@coop-net.example - User unknown!\n"
        b"Mime-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="PART-BREAK-1"\n'
        b"\n"
        b"--PART-BREAK-1\n"
        b"Content-Type: text/plain; charset=US-ASCII\n"
        b"\n"
        b"lucia@coop-net.example - no such user here.\n"
        b"\n"
        b"There is no user by that name at this server.\n"
        b"\n"
        b"--PART-BREAK-1\n"
        b"Content-Type: message/rfc822\n"
        b"\n"
        b"From: orders@tea-shop.example\n"
        b"To: lucia@coop-net.example\n"
        b"Subject: Your order\n"
        b"\n"
        b"Shipped.\n"
        b"--PART-BREAK-1--\n"
    )
    line = _one(raw)
    assert (line["recipient"], line["permanent"], line["reason"]) == (
        "lucia@coop-net.example",
        True,
        "userunknown",
    )


def test_original_message_details_are_not_recipients() -> None:
    # Vade Secure style: after the failed recipient, "Original message details:" lists the
    # returned message's From and To, which are not failed recipients.
    raw = (
        b"From: MAILER-DAEMON <mailer-daemon@filter.mailhost.example>\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: Undeliverable: spring sale\n"
        b"Auto-Submitted: auto-replied\n"
        b"Content-Type: text/plain\n"
        b"\n"
        b"Delivery has failed to these recipients or distribution lists:\n"
        b"\n"
        b'Server "192.0.2.45:25" returned an error:\n'
        b"\n"
        b"\t* [dana.w@mailhost.example]: 552 dana.w@mailhost.example...Mailbox is full\n"
        b"\n"
        b"\n"
        b"Original message details:\n"
        b"\n"
        b"\t* From: sales@outdoor-gear.example\n"
        b"\t* To: friend@elsewhere.example\n"
        b"\t* Subject: spring sale\n"
    )
    line = _one(raw)
    assert (line["recipient"], line["smtp_code"], line["reason"]) == (
        "dana.w@mailhost.example",
        552,
        "mailboxfull",
    )


def test_a_telephone_number_is_not_a_reply_code() -> None:
    assert find_reply_code("please call Customer Support at (480) 555-0100.") == 0
    assert find_reply_code("or dial 480-555-0100 today") == 0
    assert find_reply_code("host said: 550 5.1.1 unknown") == 550
    assert find_reply_code("(#550 user unknown)") == 550


def _text_bounce(body: bytes) -> bytes:
    return (
        b"From: MAILER-DAEMON@mx.mailhost.example\n"
        b"To: b+token@bounces.postline.test\n"
        b"Subject: Returned mail\n"
        b"\n" + body
    )


def test_full_mailbox_with_a_support_phone_number_stays_final() -> None:
    # qmail at a hosting company: the only number in the text is a telephone number.
    raw = _text_bounce(
        b"We could not deliver to the address(es) below. If the problem goes on,\n"
        b"call our Support line at (480) 555-0199.\n"
        b"\n"
        b"<kim.o@mailhost.example>:\n"
        b"The message could not be delivered because the user's mailfolder is full.\n"
    )
    line = _one(raw)
    assert (line["smtp_code"], line["permanent"], line["reason"]) == (0, True, "mailboxfull")


def test_returned_mail_that_a_postmaster_will_follow_up_is_final() -> None:
    # USA.NET style: "will attempt to contact the intended recipient" is not a retry.
    raw = _text_bounce(
        b"Intended recipient: ben.f@mailhost.example\n"
        b"\n"
        b"The following mail has been returned because it encountered an error\n"
        b"while being processed.  Please try to resend this message.\n"
        b"\n"
        b"A notice of this error was reported to the POSTMASTER, who\n"
        b"will attempt to contact the intended recipient.\n"
    )
    assert _one(raw)["permanent"] is True


def test_delivery_attempts_will_continue_is_temporary() -> None:
    raw = _text_bounce(
        b"Your message with Subject: Re: picnic\n"
        b"could not be delivered to the following recipients:\n"
        b"\n"
        b"Ola.N@mailhost.example\n"
        b"\n"
        b"Please do not resend your original message.\n"
        b"\n"
        b"Delivery attempts will continue to be made for 4  day(s).\n"
    )
    line = _one(raw)
    assert (line["recipient"], line["permanent"]) == ("Ola.N@mailhost.example", False)


def test_a_temporary_status_after_the_last_attempt_is_final() -> None:
    # The reporting MTA says it stopped after many attempts: the 4.x.x status is the last
    # reply it got (RFC 3464 2.3.3: the failure, not the status class, is what is final).
    body = (
        b"This is a delivery failure notification message indicating that\n"
        b"an email addressed to email address :\n"
        b"-- max.r@mailhost.example\n"
        b"\n"
        b"could not be delivered. The problem appears to be :\n"
        b"-- Recipient server unavailable or busy\n"
        b"\n"
        b"Additional information follows :\n"
        b"-- 4.4.1 Connection timed out\n"
        b"\n"
        b"This condition occurred after 25 attempt(s) to deliver over\n"
        b"a period of 72 hour(s) and 10 minute(s).\n"
    )
    line = _one(_text_bounce(body))
    assert (line["status"], line["permanent"]) == ("4.4.1", True)
    # A warning that counts its attempts and goes on stays temporary.
    warning = body.replace(b"could not be delivered", b"has not yet been delivered")
    assert _one(_text_bounce(warning))["permanent"] is False


_COLON_LINE = re.compile(r"^\s*<(" + ADDRESS_RE.pattern + r")>\s*(:|\.\.\.)", re.M)


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.sampled_from(["<a@b.cx>", "<c@d.ex>", ":", "...", ".", " ", "\t", "\n", "x"])).map(
        "".join
    )
)
def test_colon_lines_equal_the_line_anchored_pattern(text: str) -> None:
    assert _colon_lines(text) == [m.group(1) for m in _COLON_LINE.finditer(text)]


# One line of each form ORIGINAL_MARKER knows.
_MARKER_LINES = [
    "-- original message --",
    "==== returned message",
    "__ undelivered message",
    "** unsent message",
    "--- message headers",
    "-- headers of the message",
    "---- start of returned message ----",
    "> this is a copy of the message",
    "below this line is a copy of the message.",
    "original message follows",
    "message headers follow",
    "unsent message below",
    "original message details:",
    "|------ message text follows: ---|",
]


def test_original_start_finds_every_marker_form() -> None:
    for line in _MARKER_LINES:
        text = "The bounce's own words, long enough to pass the start.\n" + line + "\nrest\n"
        assert original_start(text, 40) == text.index(line), line


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "x" * 25 + "original message follows",
                "headers of",
                "message",
                "--",
                ">",
                " ",
                "\n",
                "a",
            ]
        )
    ).map("".join)
)
def test_original_start_equals_the_marker_search(text: str) -> None:
    plain = ORIGINAL_MARKER.search(text, 40)
    assert original_start(text, 40) == (plain.start() if plain else -1)


_PARAGRAPH_END = re.compile(r"\n\s*\n\s*\S+@|\n\s*<[^>\s]+@")


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(["\n", " ", "\t", "\f", "a", "@", "<", ">", "b@c", "x y"])))
def test_the_next_address_starts_where_the_plain_pattern_says(pieces: list[str]) -> None:
    text = "".join(pieces)
    plain, ours = _PARAGRAPH_END.search(text), _NEXT_ADDRESS.search(text)
    assert (plain and plain.start()) == (ours and ours.start())
