"""Every bounce reason against real-world reply texts (written after what the named MTAs and
providers answer), through the classifier both stages use: reason, class, permanence and
the status (reported, else derived from the reply code and the reason)."""

from __future__ import annotations

from collections import Counter

import pytest

from shared.bounceclass.classify import classify
from shared.bounceclass.reasons import REASONS, Reason, explain, reason_names, reason_of
from shared.bounceclass.rules import load_rules

TABLE = load_rules()
GMAIL = "gmail-smtp-in.l.google.com"
OUTLOOK = "example-com.mail.protection.outlook.com"
YAHOO = "mta7.am0.yahoodns.net"
OTHER = "mx.example.net"

# (status as reported, reply code, text, remote MTA) ->
#     (reason, class, permanent, status: the reported one or the derived one)
CASES: list[tuple[str, int, str, str, str, str, bool, str]] = [
    # userunknown
    (
        "5.1.1",
        550,
        "5.1.1 The email account that you tried to reach does not exist. Please "
        "try double-checking the recipient's email address for typos",
        GMAIL,
        "userunknown",
        "hard",
        True,
        "5.1.1",
    ),
    (
        "",
        550,
        "<nobody@example.org>: Recipient address rejected: User unknown in local recipient table",
        OTHER,
        "userunknown",
        "hard",
        True,
        "5.1.1",
    ),
    (
        "",
        550,
        "Requested action not taken: mailbox unavailable",
        OUTLOOK,
        "userunknown",
        "hard",
        True,
        "5.1.1",
    ),
    (
        "",
        511,
        "sorry, no mailbox here by that name. (#5.1.1)",
        OTHER,
        "userunknown",
        "hard",
        True,
        "5.1.1",
    ),
    (
        "5.4.1",
        550,
        "5.4.1 Recipient address rejected: Access denied. AS(201806281) "
        "[DM6NAM11FT011.eop-nam11.prod.protection.outlook.com]",
        OUTLOOK,
        "userunknown",
        "hard",
        True,
        "5.4.1",
    ),
    # hostunknown
    (
        "",
        550,
        "Host unknown (Name server: example.invalid: host not found)",
        OTHER,
        "hostunknown",
        "hard",
        True,
        "5.1.2",
    ),
    (
        "5.1.2",
        550,
        "5.1.2 <x@nonexistent.example>: Recipient address rejected: Domain not found",
        OTHER,
        "hostunknown",
        "hard",
        True,
        "5.1.2",
    ),
    (
        "",
        0,
        'Unrouteable mail domain "nonexistent.example"',
        OTHER,
        "hostunknown",
        "hard",
        True,
        "5.1.2",
    ),
    # hasmoved
    (
        "",
        551,
        "User not local; please try <new@example.org>. The user has moved",
        OTHER,
        "hasmoved",
        "hard",
        True,
        "5.1.6",
    ),
    (
        "5.1.6",
        550,
        "5.1.6 Recipient addressee has changed his email address",
        OTHER,
        "hasmoved",
        "hard",
        True,
        "5.1.6",
    ),
    # notaccept
    (
        "5.1.10",
        556,
        "5.1.10 recipient domain has a null MX (RFC 7505)",
        OTHER,
        "notaccept",
        "hard",
        True,
        "5.1.10",
    ),
    ("", 554, "This domain does not accept mail", OTHER, "notaccept", "hard", True, "5.3.2"),
    # suspend
    (
        "5.2.1",
        550,
        "5.2.1 The email account that you tried to reach is disabled.",
        GMAIL,
        "suspend",
        "hard",
        True,
        "5.2.1",
    ),
    (
        "",
        554,
        "delivery error: dd Sorry, your message to x@yahoo.com cannot be delivered. "
        "This mailbox is disabled (554.30). - mta1181.mail.gq1.yahoo.com",
        YAHOO,
        "suspend",
        "hard",
        True,
        "5.2.1",
    ),
    ("", 550, "Account has been suspended", OTHER, "suspend", "hard", True, "5.2.1"),
    # norelaying
    (
        "5.7.1",
        554,
        "5.7.1 <x@elsewhere.example>: Relay access denied",
        OTHER,
        "norelaying",
        "hard",
        True,
        "5.7.1",
    ),
    (
        "",
        553,
        "sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
        OTHER,
        "norelaying",
        "hard",
        True,
        "5.7.1",
    ),
    # mailboxfull
    (
        "4.2.2",
        452,
        "4.2.2 The email account that you tried to reach is over quota.",
        GMAIL,
        "mailboxfull",
        "soft",
        False,
        "4.2.2",
    ),
    ("", 552, "Mailbox size limit exceeded", OTHER, "mailboxfull", "soft", True, "5.2.2"),
    (
        "",
        0,
        "mailbox is full: retry timeout not reached",
        OTHER,
        "mailboxfull",
        "soft",
        False,
        "4.2.2",
    ),
    # mesgtoobig
    (
        "5.3.4",
        552,
        "5.3.4 Message size exceeds fixed maximum message size",
        OTHER,
        "mesgtoobig",
        "soft",
        True,
        "5.3.4",
    ),
    ("", 552, "Message too large", OTHER, "mesgtoobig", "soft", True, "5.3.4"),
    # exceedlimit
    (
        "4.5.3",
        452,
        "4.5.3 Error: too many recipients",
        OTHER,
        "exceedlimit",
        "soft",
        False,
        "4.5.3",
    ),
    (
        "",
        552,
        "Message length exceeds administrative limit",
        OTHER,
        "exceedlimit",
        "soft",
        True,
        "5.2.3",
    ),
    # systemfull
    (
        "4.3.1",
        452,
        "4.3.1 Insufficient system storage",
        OTHER,
        "systemfull",
        "soft",
        False,
        "4.3.1",
    ),
    (
        "",
        451,
        "Temporary local problem - please try later: no space left on device",
        OTHER,
        "systemfull",
        "soft",
        False,
        "4.3.1",
    ),
    # expired
    ("5.4.7", 554, "5.4.7 delivery time expired", OTHER, "expired", "soft", True, "5.4.7"),
    ("", 0, "retry timeout exceeded", OTHER, "expired", "soft", False, "4.4.7"),
    (
        "4.4.7",
        0,
        "Delivery time expired: message could not be delivered for 5 days",
        OTHER,
        "expired",
        "soft",
        False,
        "4.4.7",
    ),
    # networkerror
    ("4.4.1", 451, "4.4.1 no MX host answered", OTHER, "networkerror", "soft", False, "4.4.1"),
    ("", 0, "Connection timed out", OTHER, "networkerror", "soft", False, "4.4.1"),
    ("5.4.6", 554, "5.4.6 Too many hops 31 (25 max)", OTHER, "networkerror", "soft", True, "5.4.6"),
    # systemerror
    (
        "",
        421,
        "Service not available, closing transmission channel",
        OTHER,
        "systemerror",
        "soft",
        False,
        "4.3.0",
    ),
    ("4.3.0", 451, "4.3.0 Internal server error", OTHER, "systemerror", "soft", False, "4.3.0"),
    # mailererror
    (
        "",
        554,
        "mail for x@example.org loops back to myself... local delivery failed: "
        "procmail exit status 75",
        OTHER,
        "mailererror",
        "soft",
        True,
        "5.3.0",
    ),
    ("", 550, "Unknown mailer error 1", OTHER, "mailererror", "soft", True, "5.3.0"),
    # syntaxerror
    (
        "5.5.2",
        500,
        "5.5.2 Syntax error, command unrecognized",
        OTHER,
        "syntaxerror",
        "soft",
        True,
        "5.5.2",
    ),
    ("", 503, "Bad sequence of commands", OTHER, "syntaxerror", "soft", True, "5.5.2"),
    # ratelimited
    (
        "4.2.1",
        452,
        "4.2.1 The user you are trying to contact is receiving mail at a rate "
        "that prevents additional messages from being delivered.",
        GMAIL,
        "ratelimited",
        "soft",
        False,
        "4.2.1",
    ),
    (
        "",
        421,
        "Too many concurrent SMTP connections; please try again later.",
        OTHER,
        "ratelimited",
        "soft",
        False,
        "4.4.5",
    ),
    (
        "4.7.0",
        450,
        "4.7.0 Rate limit exceeded, try again in 10 minutes",
        OTHER,
        "ratelimited",
        "soft",
        False,
        "4.7.0",
    ),
    # greylisted
    (
        "4.2.0",
        450,
        "4.2.0 <x@example.org>: Recipient address rejected: Greylisted, see "
        "http://postgrey.schweikert.ch/help/example.org.html",
        OTHER,
        "greylisted",
        "soft",
        False,
        "4.2.0",
    ),
    (
        "",
        451,
        "Greylisting in action, please come back later",
        OTHER,
        "greylisted",
        "soft",
        False,
        "4.2.0",
    ),
    # onhold
    ("", 0, "Your message is on hold pending moderation", OTHER, "onhold", "soft", False, "4.0.0"),
    (
        "",
        0,
        "The message has been quarantined by the recipient's administrator",
        OTHER,
        "onhold",
        "soft",
        False,
        "4.0.0",
    ),
    # blocked
    (
        "5.7.1",
        554,
        "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using "
        "zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.1",
        OTHER,
        "blocked",
        "block",
        True,
        "5.7.1",
    ),
    (
        "",
        550,
        "5.7.606 Access denied, banned sending IP [192.0.2.1]. To request removal "
        "from this list please visit https://sender.office.com/ (S3150)",
        OUTLOOK,
        "blocked",
        "block",
        True,
        "5.7.1",
    ),
    (
        "",
        554,
        "Blocked - see https://www.spamcop.net/bl.shtml?192.0.2.1",
        OTHER,
        "blocked",
        "block",
        True,
        "5.7.1",
    ),
    # badreputation
    (
        "4.7.28",
        421,
        "4.7.28 Our system has detected an unusual rate of unsolicited mail "
        "originating from your IP address.",
        GMAIL,
        "badreputation",
        "block",
        False,
        "4.7.28",
    ),
    (
        "4.7.0",
        421,
        "4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to "
        "unexpected volume or user complaints",
        YAHOO,
        "badreputation",
        "block",
        False,
        "4.7.0",
    ),
    (
        "",
        550,
        "Message rejected due to the sender's poor reputation",
        OTHER,
        "badreputation",
        "block",
        True,
        "5.7.0",
    ),
    # spamdetected
    (
        "5.7.1",
        550,
        "5.7.1 Our system has detected that this message is likely unsolicited "
        "mail. To reduce the amount of spam sent to Gmail, this message has been blocked.",
        GMAIL,
        "spamdetected",
        "block",
        True,
        "5.7.1",
    ),
    (
        "",
        554,
        "5.7.1 Message rejected as spam by Content Filtering.",
        OTHER,
        "spamdetected",
        "block",
        True,
        "5.7.1",
    ),
    # virusdetected
    (
        "",
        554,
        "5.7.0 message rejected: Virus found (Eicar-Test-Signature)",
        OTHER,
        "virusdetected",
        "block",
        True,
        "5.7.1",
    ),
    (
        "5.7.1",
        550,
        "5.7.1 Message infected with Win.Trojan.Agent",
        OTHER,
        "virusdetected",
        "block",
        True,
        "5.7.1",
    ),
    # contenterror
    (
        "5.7.1",
        552,
        "5.7.1 Banned attachment type: .exe",
        OTHER,
        "contenterror",
        "block",
        True,
        "5.7.1",
    ),
    ("5.6.0", 554, "5.6.0 Message content rejected", OTHER, "contenterror", "block", True, "5.6.0"),
    # notcompliantrfc
    (
        "5.7.1",
        550,
        "5.7.1 [192.0.2.1] Our system has detected that this message is not "
        "RFC 5322 compliant: Multiple 'From' headers found.",
        GMAIL,
        "notcompliantrfc",
        "block",
        True,
        "5.7.1",
    ),
    (
        "",
        550,
        "Message contains bare LF and is violating 822.bis section 2.3",
        OTHER,
        "notcompliantrfc",
        "block",
        True,
        "5.6.0",
    ),
    # policyviolation
    (
        "5.7.1",
        550,
        "5.7.1 Delivery not authorized, message refused",
        OTHER,
        "policyviolation",
        "block",
        True,
        "5.7.1",
    ),
    (
        "5.7.0",
        554,
        "5.7.0 Transaction failed due to local policy",
        OTHER,
        "policyviolation",
        "block",
        True,
        "5.7.0",
    ),
    # authfailure
    (
        "5.7.26",
        550,
        "5.7.26 This mail is unauthenticated, which poses a security risk to "
        "the sender and Gmail users, and has been blocked.",
        GMAIL,
        "authfailure",
        "block",
        True,
        "5.7.26",
    ),
    (
        "",
        550,
        "5.7.509 Access denied, sending domain example.com does not pass DMARC "
        "verification and has a DMARC policy of reject.",
        OUTLOOK,
        "authfailure",
        "block",
        True,
        "5.7.26",
    ),
    (
        "",
        550,
        "SPF check failed: example.com does not designate 192.0.2.1 as permitted sender",
        OTHER,
        "authfailure",
        "block",
        True,
        "5.7.26",
    ),
    # requireptr
    (
        "5.7.25",
        550,
        "5.7.25 The IP address sending this message does not have a PTR record setup.",
        GMAIL,
        "requireptr",
        "block",
        True,
        "5.7.25",
    ),
    (
        "4.7.1",
        450,
        "4.7.1 Client host rejected: cannot find your hostname, [192.0.2.1]",
        OTHER,
        "requireptr",
        "block",
        False,
        "4.7.1",
    ),
    # rejected (our envelope sender)
    (
        "5.1.8",
        553,
        "5.1.8 <bounces@example.com>: Sender address rejected: Domain not found",
        OTHER,
        "rejected",
        "block",
        True,
        "5.1.8",
    ),
    ("", 550, "Sender verify failed", OTHER, "rejected", "block", True, "5.1.8"),
    # securityerror
    (
        "5.7.0",
        530,
        "5.7.0 Must issue a STARTTLS command first",
        OTHER,
        "securityerror",
        "block",
        True,
        "5.7.0",
    ),
    (
        "4.7.5",
        451,
        "TLS required but not available",
        OTHER,
        "securityerror",
        "block",
        False,
        "4.7.5",
    ),
    (
        "4.7.0",
        454,
        "4.7.0 TLS not available due to local problem",
        OTHER,
        "securityerror",
        "block",
        False,
        "4.7.0",
    ),
    (
        "",
        530,
        "Must issue a STARTTLS command first",
        OTHER,
        "securityerror",
        "block",
        True,
        "5.7.10",
    ),
    # vacation
    (
        "",
        0,
        "I am out of the office until Monday with limited access to email.",
        OTHER,
        "vacation",
        "auto_reply",
        False,
        "",
    ),
    (
        "",
        0,
        "This is an automatic reply: I am on leave.",
        OTHER,
        "vacation",
        "auto_reply",
        False,
        "",
    ),
    # undefined: nothing to recognise; the reply code still gives the status class
    ("", 554, "Transaction failed", OTHER, "undefined", "unknown", True, "5.0.0"),
    ("", 0, "", OTHER, "undefined", "unknown", False, "4.0.0"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[4]}-{i}" for i, c in enumerate(CASES)])
def test_reply_gives_reason_class_permanence_and_status(
    case: tuple[str, int, str, str, str, str, bool, str],
) -> None:
    status, code, text, mta, *expected = case
    verdict = classify(status, code, text, mta, TABLE)
    got = [verdict.reason, verdict.bounce_class, verdict.permanent, verdict.status]
    assert got == expected


def test_every_reason_has_two_real_texts() -> None:
    seen = Counter(case[4] for case in CASES)
    # A complaint is known from the report's kind (ARF), never from a reply text.
    missing = {str(r) for r in Reason} - {"feedback"} - {r for r, n in seen.items() if n >= 2}
    assert not missing


def test_the_table_covers_every_reason_with_a_meaning() -> None:
    assert set(REASONS) == set(Reason)
    assert all(info.meaning for info in REASONS.values())
    assert reason_names() == tuple(str(r) for r in Reason)


def test_the_report_s_action_decides_permanence_before_the_codes() -> None:
    # RFC 3464 2.3.3: "failed" with a 4.x.x status (expired) is final; the status stays.
    why = explain("4.4.7", 0, "delivery expired", permanent=True)
    assert (why.reason, why.permanent, why.status, why.derived) == ("expired", True, "4.4.7", False)
    # Without a status the report's verdict gives the derived status its class.
    why = explain("", 0, "user unknown", permanent=False)
    assert (why.permanent, why.status, why.derived) == (False, "4.1.1", True)


def test_a_word_in_the_text_beats_a_misused_code() -> None:
    # A spam filter answering with an address code: the text says what happened.
    assert reason_of("5.1.1", 550, "5.1.1 Message rejected: listed in zen.spamhaus.org") == (
        "blocked"
    )
    assert reason_of("5.1.1", 550, "5.1.1 <x@example.org> ... address ok") == "userunknown"


def test_long_texts_are_read_up_to_a_bound() -> None:
    # The matcher reads what events keep (and a little more): a later word does not count.
    assert reason_of("", 550, "x" * 700 + " user unknown") == "undefined"
    assert reason_of("", 550, "x" * 300 + " user unknown") == "userunknown"
