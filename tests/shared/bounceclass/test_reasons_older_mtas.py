"""Reasons for the phrasings of older and less common MTAs (written after what each named
MTA writes), and the report's surrounding words read only when the diagnostic names none."""

from __future__ import annotations

import pytest

from shared.bounceclass.classify import classify
from shared.bounceclass.reasons import explain, reason_of
from shared.bounceclass.rules import load_rules

TABLE = load_rules()

# (reply code, text) -> reason; each row a phrasing family, the MTA that writes it named.
PHRASINGS: list[tuple[int, str, str]] = [
    # qmail-remote: the domain has no MX and no address (qmail writes #5.1.2 or none).
    (0, "Sorry, I couldn't find any host by that name.", "hostunknown"),
    (0, "Sorry, I couldn't find any host named mail.typo.example. (#5.1.2)", "hostunknown"),
    # Routers with no route for the domain (RFC 3463 X.4.4 "unable to route").
    (0, "Routing: Could not find a gateway for ann@far.example", "hostunknown"),
    # Ipswitch IMail / SMTP32.
    (0, "Invalid final delivery userid: ann@imail-host.example", "userunknown"),
    (0, "Delivery failed 20 attempts: ann@slow.example", "expired"),
    # phquery-style directory mailers; a site's directory variant.
    (0, "ann    No matches to nameserver query", "userunknown"),
    (0, "ann@lab.example, did not exactly match an LAB email address.", "userunknown"),
    # Lotus Domino: an ambiguous name (its double space after the full stop).
    (
        0,
        "Recipient user name info (info@d.example) not unique.  Several matches found",
        "userunknown",
    ),
    # Netscape/iPlanet Messaging Server, retry period over.
    (
        0,
        "Your message was not delivered within 2 days. Host x.example is not responding.",
        "expired",
    ),
    (0, "the destination computer was not reachable within the allowed queue period", "expired"),
    # A holding mailbox's message never collected.
    (0, "failed because it has not been collected after 30 days", "expired"),
    # Sun/iPlanet Messaging Server, a DSN Status comment; PMDF/VMS's quota error.
    (0, "recipient reached disk quota", "mailboxfull"),
    (0, "-SYSTEM-F-EXDISKQUOTA, disk quota exceeded", "mailboxfull"),
    # A size limit written in the past tense.
    (553, "553 Exceeded maximum inbound message size", "mesgtoobig"),
    (0, "This mail message has exceeded the maximum incoming message size.", "mesgtoobig"),
    # A required header missing (RFC 5322 3.6, 3.6.6): CommuniGate Pro; a Postfix relay
    # quoting the remote's refusal of a resent message without Resent-From.
    (0, "Messages without To: fields are not accepted here", "notcompliantrfc"),
    (554, "host mx.example said: 554 No Resent-From field given", "notcompliantrfc"),
    # A list manager holding the message for its moderator.
    (0, "Is being held until the list moderator can review it for approval", "onhold"),
]


@pytest.mark.parametrize(("code", "text", "reason"), PHRASINGS)
def test_phrasing_gives_reason(code: int, text: str, reason: str) -> None:
    assert str(reason_of("", code, text)) == reason


@pytest.mark.parametrize(
    "text",
    [
        "Delivery to the following recipient failed permanently:",
        "No header field was harmed; the message was accepted for no one",
        "The message was sent without attachments",
        "The following recipients did not receive this message:",
    ],
)
def test_words_that_name_no_reason_stay_undefined(text: str) -> None:
    assert str(reason_of("", 0, text)) == "undefined"


def test_no_route_to_a_host_stays_a_network_error() -> None:
    assert str(reason_of("", 0, "connect to mx.far.example: No route to host")) == "networkerror"


def test_context_is_read_only_when_the_diagnostic_names_no_reason() -> None:
    # The diagnostic's own reason wins over the words around it.
    got = explain("", 550, "550 5.2.2 mailbox full", context="Undeliverable Address:")
    assert (str(got.reason), got.status) == ("mailboxfull", "5.2.2")
    # A diagnostic naming nothing: the context gives the reason and the derived status.
    got = explain("", 0, "ann@far.example", True, context="Delivery failed 20 attempts:")
    assert (str(got.reason), got.status, got.derived) == ("expired", "5.4.7", True)
    # A reported status stays the status, derived is false.
    got = explain("5.0.0", 0, "", True, context="Domain does not exist")
    assert (str(got.reason), got.status, got.derived) == ("hostunknown", "5.0.0", False)


def test_classify_marks_a_derived_status() -> None:
    verdict = classify("", 0, "Sorry, I couldn't find any host by that name.", "", TABLE)
    assert (str(verdict.reason), verdict.status, verdict.status_derived) == (
        "hostunknown",
        "5.1.2",
        True,
    )
    reported = classify("5.1.2", 550, "no such domain", "", TABLE)
    assert (reported.status, reported.status_derived) == ("5.1.2", False)


def test_classify_reads_the_context_for_the_class_when_the_rules_know_nothing() -> None:
    verdict = classify(
        "", 0, "ann@far.example", "", TABLE, context="Invalid final delivery userid:"
    )
    assert (str(verdict.bounce_class), str(verdict.reason), verdict.rule) == (
        "hard",
        "userunknown",
        "reason:userunknown",
    )
