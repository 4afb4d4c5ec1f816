"""The classifier against real reply texts, and the rule table's loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.bounceclass.classify import classify
from shared.bounceclass.rules import BounceClass, load_rules, parse_rules
from shared.errors import ConfigError

TABLE = load_rules()

# (status, reply code, diagnostic as the remote wrote it, remote MTA, class, rule prefix)
REPLIES = [
    (
        "5.1.1",
        550,
        "5.1.1 The email account that you tried to reach does not exist. Please try "
        "double-checking the recipient's email address for typos",
        "gmail-smtp-in.l.google.com",
        "hard",
        "rfc3463:5.1.1",
    ),
    (
        "5.2.1",
        550,
        "5.2.1 The email account that you tried to reach is disabled.",
        "gmail-smtp-in.l.google.com",
        "hard",
        "rfc3463:5.2.1",
    ),
    (
        "4.2.2",
        452,
        "4.2.2 The email account that you tried to reach is over quota.",
        "gmail-smtp-in.l.google.com",
        "soft",
        "rfc3463:4.2.2",
    ),
    (
        "5.7.26",
        550,
        "5.7.26 This mail is unauthenticated, which poses a security risk to the "
        "sender and Gmail users",
        "gmail-smtp-in.l.google.com",
        "block",
        "rfc3463:5.7.26",
    ),
    (
        "4.7.28",
        421,
        "4.7.28 Our system has detected an unusual rate of unsolicited mail "
        "originating from your IP address",
        "gmail-smtp-in.l.google.com",
        "block",
        "rfc3463:4.7.28",
    ),
    (
        "5.7.1",
        550,
        "5.7.1 [203.0.113.10] Our system has detected that this message is likely "
        "unsolicited mail.",
        "gmail-smtp-in.l.google.com",
        "block",
        "rule:google-reputation",
    ),
    (
        "5.4.1",
        550,
        "5.4.1 Recipient address rejected: Access denied. AS(201806281)",
        "contoso-com.mail.protection.outlook.com",
        "hard",
        "rule:microsoft-recipient-not-found",
    ),
    (
        "5.7.1",
        550,
        "5.7.1 Unfortunately, messages from [203.0.113.10] weren't sent. Please contact "
        "your Internet service provider since part of their network is on our block list (S3150).",
        "hotmail-com.olc.protection.outlook.com",
        "block",
        "rule:microsoft-banned-ip",
    ),
    (
        "",
        554,
        "delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0]",
        "mta6.am0.yahoodns.net",
        "hard",
        "rule:yahoo-no-account",
    ),
    (
        "4.7.0",
        421,
        "4.7.0 [TSS04] Messages from 203.0.113.10 temporarily deferred due to "
        "unexpected volume or user complaints",
        "mta7.am0.yahoodns.net",
        "block",
        "rule:yahoo-ts-deferral",
    ),
    (
        "5.0.0",
        550,
        "Requested action not taken: mailbox unavailable",
        "mx.example.net",
        "hard",
        "rule:user-unknown",
    ),
    (
        "5.0.0",
        550,
        "<x@example.org>: Recipient address rejected: User unknown in local recipient table",
        "mx.example.org",
        "hard",
        "rule:user-unknown",
    ),
    (
        "",
        550,
        "Service unavailable; Client host [203.0.113.10] blocked using zen.spamhaus.org",
        "mx.example.org",
        "block",
        "rule:blocklisted",
    ),
    (
        "5.7.1",
        554,
        "5.7.1 <x@example.org>: Relay access denied",
        "mx.example.org",
        "hard",
        "rule:relay-denied",
    ),
    (
        "5.3.4",
        552,
        "5.3.4 Message size exceeds fixed maximum message size",
        "mx.example.org",
        "soft",
        "rfc3463:5.3.4",
    ),
    (
        "",
        552,
        "Requested mail action aborted: exceeded storage allocation",
        "mx.example.org",
        "soft",
        "rule:mailbox-full",
    ),
    ("4.4.7", 554, "delivery time expired", "", "soft", "rfc3463:4.4.7"),
    ("", 451, "Temporary lookup failure", "mx.example.org", "soft", "rule:temporary"),
    (
        "",
        450,
        "Greylisted, please try again in 300 seconds",
        "mx.example.org",
        "soft",
        "rule:temporary",
    ),
    (
        "5.1.10",
        550,
        "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        "example-com.mail.protection.outlook.com",
        "hard",
        "rule:microsoft-recipient-not-found",
    ),
    (
        "5.1.1",
        550,
        "5.1.1 Message rejected as spam by Content Filtering",
        "mx.example.org",
        "block",
        "rule:any-spam-under-address-code",
    ),
    (
        "5.7.1",
        550,
        "5.7.1 Message rejected due to DMARC policy",
        "mx.example.org",
        "block",
        "rule:authentication-failure",
    ),
    (
        "4.1.1",
        450,
        "4.1.1 <x@example.org>: Recipient address rejected: unverified address",
        "mx.example.org",
        "soft",
        "rfc3463:4.1.1",
    ),
    ("", 550, "something nobody has seen before", "mx.example.org", "unknown", "smtp:550"),
    ("", 0, "", "", "unknown", "none"),
]


@pytest.mark.parametrize("case", REPLIES, ids=lambda case: f"{case[0] or case[1]}-{case[4]}")
def test_classify_real_replies(case: tuple[str, int, str, str, str, str]) -> None:
    status, code, text, mta, klass, rule = case
    verdict = classify(status, code, text, mta, TABLE)
    assert (str(verdict.bounce_class), verdict.rule) == (klass, rule)


def test_operator_table_overrides_a_specific_code(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[rule]]\nname = "mailbox-full-is-hard-here"\nclass = "hard"\noverride = true\n'
        "status = '^5\\.2\\.2$'\npattern = 'mailbox full'\n"
    )
    table = load_rules(path)
    verdict = classify("5.2.2", 552, "5.2.2 mailbox full", "mx.example.org", table)
    assert verdict.bounce_class is BounceClass.HARD
    assert verdict.rule == "rule:mailbox-full-is-hard-here"


def test_provider_rules_only_apply_to_their_provider() -> None:
    text = "This user doesn't have a yahoo.com account"
    assert classify("", 554, text, "mx.other.example", TABLE).rule != "rule:yahoo-no-account"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[rule]]\nname = "a"\nclass = "hard"\npattern = "("\n', "rule[0].pattern"),
        ('[[rule]]\nname = "a"\nclass = "nope"\npattern = "x"\n', "rule[0].class"),
        ('[[rule]]\nname = "a"\nclass = "hard"\npattern = "x"\ncolour = 1\n', "rule[0].colour"),
        ('[[rule]]\nname = "a"\nclass = "hard"\npattern = "x"\n' * 2, "rule[1].name"),
    ],
)
def test_bad_rule_tables_name_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_rules(text, "rules.toml")
    assert err.value.source == "rules.toml"
    assert key in str(err.value)
