"""What the bouncer makes of one recipient of a parsed report (``services.bouncer.classify``):
the report's kind before its codes, the MTA the provider rules look at, and whether the
report itself says the failure is final."""

from __future__ import annotations

import pytest

from services.bouncer.classify import classify_recipient, reported_permanence
from services.bouncer.report import RecipientStatus, Report, ReportKind
from shared.bounceclass.classify import Classification
from shared.bounceclass.reasons import Reason
from shared.bounceclass.rules import BounceClass, load_rules

TABLE = load_rules()
# Exchange Online's answer for a recipient it does not have: a 5.4.1 (a routing code) that
# only the Microsoft rule reads as "no such user".
DBEB = "550 5.4.1 Recipient address rejected: Access denied. [RESOLVER.ADR.RecipNotFound]"
UNKNOWN = RecipientStatus(
    "bob@shop.example", action="failed", status="5.1.1", smtp_code=550, diagnostic="no such user"
)


def _dsn(status: RecipientStatus, reporting_mta: str = "") -> Report:
    return Report(ReportKind.DSN, (status,), reporting_mta=reporting_mta, parser="dsn")


@pytest.mark.parametrize(("feedback_type", "rule"), [("fraud", "arf:fraud"), ("", "arf:abuse")])
def test_a_feedback_report_is_a_complaint_whatever_codes_it_carries(
    feedback_type: str, rule: str
) -> None:
    report = Report(ReportKind.COMPLAINT, (UNKNOWN,), feedback_type=feedback_type, parser="arf")
    assert classify_recipient(report, UNKNOWN, TABLE) == Classification(
        BounceClass.COMPLAINT, rule, Reason.FEEDBACK
    )


def test_an_auto_reply_is_never_a_bounce() -> None:
    # A vacation notice quoting a 5.1.1 must not suppress the recipient.
    report = Report(ReportKind.AUTO_REPLY, (UNKNOWN,), parser="autoreply:vacation")
    assert classify_recipient(report, UNKNOWN, TABLE) == Classification(
        BounceClass.AUTO_REPLY, "autoreply:vacation", Reason.VACATION
    )


def test_a_bounce_goes_to_the_shared_classifier_with_its_codes() -> None:
    assert classify_recipient(_dsn(UNKNOWN), UNKNOWN, TABLE) == Classification(
        BounceClass.HARD, "rfc3463:5.1.1", Reason.USER_UNKNOWN, "5.1.1", True
    )
    text = Report(ReportKind.BOUNCE, (UNKNOWN,), parser="text:qmail")
    assert classify_recipient(text, UNKNOWN, TABLE).bounce_class is BounceClass.HARD


@pytest.mark.parametrize(
    ("remote_mta", "reporting_mta", "bounce_class", "rule"),
    [
        # The reporting MTA names the provider when the report has no Remote-MTA.
        ("", "eur.protection.outlook.com", BounceClass.HARD, "rule:microsoft-recipient-not-found"),
        ("eur.protection.outlook.com", "", BounceClass.HARD, "rule:microsoft-recipient-not-found"),
        # The Remote-MTA is the host that answered: it wins over the one that reported.
        (
            "eur.protection.outlook.com",
            "mx.relay.example",
            BounceClass.HARD,
            "rule:microsoft-recipient-not-found",
        ),
        ("mx.relay.example", "eur.protection.outlook.com", BounceClass.SOFT, "rfc3463:5.4.1"),
        ("", "", BounceClass.SOFT, "rfc3463:5.4.1"),
    ],
)
def test_provider_rules_see_the_mta_that_answered(
    remote_mta: str, reporting_mta: str, bounce_class: BounceClass, rule: str
) -> None:
    status = RecipientStatus(
        "bob@contoso.example",
        action="failed",
        status="5.4.1",
        smtp_code=550,
        diagnostic=DBEB,
        remote_mta=remote_mta,
    )
    verdict = classify_recipient(_dsn(status, reporting_mta), status, TABLE)
    assert (verdict.bounce_class, verdict.rule) == (bounce_class, rule)


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        # RFC 3464 2.3.3: the Action decides, whatever the status class says.
        (RecipientStatus("a@b.example", action="failed", status="4.4.7"), True),
        (RecipientStatus("a@b.example", action="delayed", status="5.2.2"), False),
        (RecipientStatus("a@b.example", action="failed"), True),
        (RecipientStatus("a@b.example", action="delayed"), False),
        # Without an Action, the status class, then the reply code.
        (RecipientStatus("a@b.example", status="5.1.1"), True),
        (RecipientStatus("a@b.example", status="4.2.2", smtp_code=552), False),
        (RecipientStatus("a@b.example", smtp_code=552), True),
        (RecipientStatus("a@b.example", smtp_code=400), False),
        (RecipientStatus("a@b.example", smtp_code=499), False),
        (RecipientStatus("a@b.example", smtp_code=500), True),
        # Nothing said (a text bounce without codes): the reason's default decides.
        (RecipientStatus("a@b.example"), None),
        (RecipientStatus("a@b.example", smtp_code=250), None),
        (RecipientStatus("a@b.example", action="delivered"), None),
    ],
)
def test_what_the_report_says_about_permanence(
    status: RecipientStatus, permanent: bool | None
) -> None:
    assert reported_permanence(status) is permanent


def test_a_text_bounce_without_codes_takes_the_reasons_default() -> None:
    # "mailbox full" is temporary by default, "user unknown" final: the report said neither.
    full = RecipientStatus("a@b.example", diagnostic="mailbox full")
    gone = RecipientStatus("a@b.example", diagnostic="user unknown")
    text = Report(ReportKind.BOUNCE, (full,), parser="text:generic")
    assert classify_recipient(text, full, TABLE).permanent is False
    assert classify_recipient(text, gone, TABLE).permanent is True
    # The same text with a final Action is final: the report's word wins.
    failed = RecipientStatus("a@b.example", action="failed", diagnostic="mailbox full")
    assert classify_recipient(text, failed, TABLE).permanent is True
