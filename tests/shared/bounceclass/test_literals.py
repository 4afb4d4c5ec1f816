"""The substring prefilters: what they read from a regex, and that they never change a
verdict (the rule table and the reason matcher, on every reply text of the tests)."""

from __future__ import annotations

import pytest

from shared.bounceclass import reasons
from shared.bounceclass.literals import lowered_pattern, pattern_literals, required_options
from shared.bounceclass.rules import load_rules, parse_rules
from tests.shared.bounceclass.test_classify import REPLIES
from tests.shared.bounceclass.test_reasons import CASES

TEXTS = [case[2] for case in CASES] + [reply[2] for reply in REPLIES]
# Case must not matter to the rules (re.IGNORECASE): the same texts shouted.
TEXTS += [text.upper() for text in TEXTS]


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        ("user ?unknown", {"unknown"}),
        (r"\b(spf|dkim|dmarc)\b", {"spf", "dkim", "dmarc"}),
        ("NoSuchUser|over quota", {"nosuchuser", "over quota"}),
        (r"mailbox[^\n]{0,40}full", {"mailbox"}),
        ("(?i)user unknown", None),  # inline flags: not understood, no prefilter
        ("a|b", None),  # too short to be worth a test
        (r"(?<!not )listed", None),
    ],
)
def test_literals_read_from_a_pattern(pattern: str, literals: set[str] | None) -> None:
    assert pattern_literals(pattern) == (None if literals is None else frozenset(literals))


def test_an_optional_part_is_never_required() -> None:
    assert required_options("mail ?box") == ("mail",)
    assert required_options("(has )?expired") == ("expired",)


def test_the_rule_table_prefilter_never_changes_a_match() -> None:
    table = load_rules()
    checked = 0
    for rule in table.rules:
        for text in TEXTS:
            plain = rule.pattern.search(text) is not None
            assert rule.matches("", text, rule.provider, text.lower()) is (
                plain and (rule.status is None or rule.status.search("") is not None)
            ), (rule.name, text)
            checked += int(plain)
    assert checked > len(CASES)  # the texts do exercise the rules


def test_an_operator_rule_with_odd_syntax_still_matches() -> None:
    table = parse_rules(
        """
[[rule]]
name = "odd"
class = "hard"
pattern = '(?i)Mailbox\\s+GONE|[]x]y'
""",
        "test.toml",
    )
    (rule,) = table.rules
    assert rule.literals is None
    assert rule.matches("", "550 mailbox   gone", "*", "550 mailbox   gone")


def test_the_reason_prefilter_never_changes_a_match() -> None:
    matchers = (*reasons._SPECIFIC_TEXT, *reasons._GENERIC_TEXT)
    for text in TEXTS:
        lowered = text.lower()
        present = reasons._LITERALS.present(lowered)
        for matcher in matchers:
            plain = any(a.pattern.search(lowered) for a in matcher.alternatives)
            assert matcher.search(lowered, present) is plain, (matcher.reason, text)


def test_the_reason_order_asks_only_matchers_that_could_match() -> None:
    # _Ordered.first skips the matchers none of whose literals is there: the first matcher
    # to match stays the one a walk through all of them in order finds.
    for text in TEXTS:
        lowered = text.lower()
        present = reasons._LITERALS.present(lowered)
        for order in (reasons._SPECIFIC_ORDER, reasons._GENERIC_ORDER):
            plain = next(
                (
                    m.reason
                    for m in order.matchers
                    if any(a.pattern.search(lowered) for a in m.alternatives)
                ),
                None,
            )
            assert order.first(lowered, present) is plain, text


def test_the_literal_scan_finds_overlapping_literals() -> None:
    # "mailbox" and "box full" overlap; both must be found, and each one's prefixes that
    # are literals too.
    scan = reasons._Literals(["mailbox", "box full", "mail", "full"])
    assert scan.present("the mailbox full") == {"mailbox", "mail", "box full", "full"}


def test_a_rule_is_searched_by_its_alternatives_only_when_that_is_exact() -> None:
    table = parse_rules(
        """
[[rule]]
name = "split"
class = "hard"
pattern = 'User ?Unknown|no such (user|mailbox)'

[[rule]]
name = "backreference"
class = "hard"
pattern = '(quota) exceeded \\1|over quota'

[[rule]]
name = "bar-in-class"
class = "hard"
pattern = 'mail[|]box|over quota'
""",
        "test.toml",
    )
    split, backreference, bar_in_class = table.rules
    assert split.alternatives is not None
    assert [sorted(literals) for literals, _ in split.alternatives] == [["unknown"], ["no such "]]
    assert split.matches("", "550 No such mailbox", "*", "550 no such mailbox")
    assert not split.matches("", "550 unknown host", "*", "550 unknown host")
    assert backreference.alternatives is None
    assert bar_in_class.alternatives is None
    assert bar_in_class.matches("", "mail|box", "*", "mail|box")


@pytest.mark.parametrize(
    ("pattern", "lowered"),
    [
        (r"RESOLVER\.ADR\.Recip(ient)?NotFound", r"resolver\.adr\.recip(ient)?notfound"),
        (r"\bSPF\b|\S+ FULL", r"\bspf\b|\S+ full"),  # escapes keep their case
        (r"[^\n]{0,40}(?:Full|OVER)(?!X)", r"[^\n]{0,40}(?:full|over)(?!x)"),
        (r"a[^]b]C", r"a[^]b]c"),  # a leading "]" is a member, not the end of the class
        (r"[A-Z]{2}\d", None),  # a class with capitals: [A-z] would span punctuation
        (r"[]A]", None),
        (r"\x41BC", None),  # a character by its code
        (r"(?i)user", None),  # inline flags
        (r"(?P<who>User)", None),  # a named group
    ],
)
def test_a_pattern_read_for_lowered_text(pattern: str, lowered: str | None) -> None:
    assert lowered_pattern(pattern) == lowered


def test_a_rule_that_cannot_be_lowered_still_matches_any_case() -> None:
    table = parse_rules(
        """
[[rule]]
name = "capitals"
class = "block"
pattern = 'code [A-Z]{2}[0-9]+ refused'
""",
        "test.toml",
    )
    (rule,) = table.rules
    assert rule.lowered_pattern is None
    text = "550 Code BL12 refused"
    assert rule.matches("", text, "*", text.lower())
    assert not rule.matches("", "550 code 12 refused", "*", "550 code 12 refused")
