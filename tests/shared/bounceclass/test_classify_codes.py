"""What the classifier falls back to when no rule and no RFC 3463 status decide: the bare
reply code at its class boundaries (400, 499, 500), a malformed status treated as none, and
a class-only verdict that says nothing about permanence; a transient failure whose
reason is a hard one staying soft (pure logic)."""

from __future__ import annotations

import pytest

from shared.bounceclass.classify import Classification, classify, classify_class
from shared.bounceclass.rules import BounceClass, load_rules

TABLE = load_rules()
U, S = BounceClass.UNKNOWN, BounceClass.SOFT


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("", 599, Classification(U, "smtp:599")),
        ("", 500, Classification(U, "smtp:500")),  # a 5yz alone: permanent, but not why
        ("", 499, Classification(S, "smtp:499")),
        ("", 400, Classification(S, "smtp:400")),  # a 4yz: transient, so soft
        ("", 399, Classification(U, "none")),
        ("", 0, Classification(U, "none")),
        ("5.a.1", 550, Classification(U, "smtp:550")),  # malformed status: as none
        ("5.1.a", 450, Classification(S, "smtp:450")),
        ("5.1", 550, Classification(U, "smtp:550")),
        ("2.0.0", 450, Classification(S, "smtp:450")),
    ],
)
def test_the_reply_code_decides_when_nothing_else_does(
    status: str, code: int, expected: Classification
) -> None:
    verdict = classify_class(status, code, "no rule matches this text", "", TABLE)
    assert verdict == expected
    assert verdict.permanent is False  # the class alone does not say


def test_a_transient_failure_never_suppresses_at_once() -> None:
    # No rule and no RFC 3463 entry decide 4.1.5; its reason (userunknown) is a hard class,
    # but a report that says the failure is transient makes it soft (no suppression yet).
    transient = classify("4.1.5", 450, "no rule matches this text", "", TABLE, permanent=False)
    assert (transient.bounce_class, transient.rule) == (S, "reason:userunknown")
    final = classify("4.1.5", 450, "no rule matches this text", "", TABLE, permanent=True)
    assert (final.bounce_class, final.rule) == (BounceClass.HARD, "reason:userunknown")


@pytest.mark.parametrize(
    ("code", "expected"), [(450, S), (451, S), (550, BounceClass.HARD), (0, BounceClass.HARD)]
)
def test_a_rule_verdict_without_a_status_follows_the_reply_codes_class(
    code: int, expected: BounceClass
) -> None:
    # "User unknown" matches a hard rule; without an enhanced code only the reply code says
    # whether the server meant it (a 450 from a callout that could not verify is transient).
    verdict = classify_class("", code, "User unknown", "", TABLE)
    assert verdict.rule.startswith("rule:")
    assert verdict.bounce_class is expected
