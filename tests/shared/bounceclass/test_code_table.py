"""The RFC 3463 code table pinned whole: every enhanced status code ``X.S.D`` (subject 0-7,
detail 0-99), with a diagnostic no rule matches, against the classes written out below.

The expected tables are written here by hand from RFC 3463 (and the RFC 3886, 7372, 7505
and 8098 registry additions), not read from ``shared.bounceclass.classify``: a change to
the code table (5.2.2 turned hard, 5.1.10 dropped) fails this test until it is made here
too, on purpose. Class 4 codes are the same table made transient: a hard class there is
soft (the address may work tomorrow), every other class stays.
"""

from __future__ import annotations

import pytest

from shared.bounceclass.classify import classify_class
from shared.bounceclass.rules import BounceClass, load_rules

TABLE = load_rules()
H, S, B, U = BounceClass.HARD, BounceClass.SOFT, BounceClass.BLOCK, BounceClass.UNKNOWN
NO_RULE = "zzz"  # matches no rule of the default table

#: Specific codes: their meaning does not depend on the text.
SPECIFIC = {
    # X.1.x addressing: bad mailbox, bad system, bad syntax, ambiguous, moved, null MX
    "1.1": H, "1.2": H, "1.3": H, "1.4": H, "1.6": H, "1.10": H,
    # X.2.x mailbox: disabled (hard); full, message too long, list expansion (soft)
    "2.1": H, "2.2": S, "2.3": S, "2.4": S,
    # X.3.x mail system: full, not accepting, not capable, too big, misconfigured
    "3.1": S, "3.2": S, "3.3": S, "3.4": S, "3.5": S,
    # X.4.x network and routing: no answer, bad connection, directory, congestion,
    # loop, delivery time expired; 4.4 unable to route (no usable MX or address)
    "4.1": S, "4.2": S, "4.3": S, "4.5": S, "4.6": S, "4.7": S, "4.4": H,
    # X.7.x security and policy: delivery not authorised, conversion, crypto,
    # authentication, SPF/DKIM/DMARC/rDNS (blocks, about us); account disabled and
    # no trust relationship (hard, about the recipient)
    "7.2": B, "7.7": B, "7.8": B, "7.9": B, "7.10": B, "7.11": B, "7.12": B,
    "7.13": H, "7.14": H,
    "7.23": B, "7.24": B, "7.25": B, "7.26": B, "7.27": B, "7.28": B,
}  # fmt: skip
#: Generic codes (and undefined details): the text decides through the rules, else this.
GENERIC = {
    "0.0": U, "1.0": H, "2.0": U, "3.0": S, "4.0": S,
    "5.0": U, "5.1": U, "5.2": U, "5.3": U, "5.4": U, "5.5": U, "5.6": U,
    "6.0": B, "6.1": B, "6.2": B, "6.3": B, "6.4": B, "6.5": B,
    "7.0": B, "7.1": B, "7.3": B, "7.4": B, "7.5": B, "7.6": B,
}  # fmt: skip

CODES = [f"{subject}.{detail}" for subject in range(8) for detail in range(100)]


def expected(klass: str, code: str) -> tuple[BounceClass, str]:
    """The class and the deciding entry for ``klass.code`` with no rule matching."""
    found = SPECIFIC.get(code)
    if found is None:
        found = GENERIC.get(code, U)
    if klass == "4" and found is H:
        found = S
    return found, f"rfc3463:{klass}.{code}"


@pytest.mark.parametrize("klass", ["5", "4"])
def test_every_code_has_the_class_written_here(klass: str) -> None:
    wrong = {
        f"{klass}.{code}": (got.bounce_class, got.rule, "expected", expected(klass, code))
        for code in CODES
        if (got := classify_class(f"{klass}.{code}", 550, NO_RULE, "", TABLE))
        and (got.bounce_class, got.rule) != expected(klass, code)
    }
    assert wrong == {}


def test_the_table_covers_the_codes_our_own_deliverer_produces() -> None:
    # 5.1.2 (no such domain), 5.1.10 (null MX), 5.4.4 (no route) and 4.4.7 (expired) are
    # what the deliverer writes itself: each must have its own entry, not the generic one.
    assert {"1.2", "1.10", "4.4", "4.7"} <= SPECIFIC.keys()
    assert classify_class("5.1.10", 550, NO_RULE, "", TABLE).bounce_class is H
    assert classify_class("4.4.7", 450, NO_RULE, "", TABLE).bounce_class is S


def test_leading_zeros_and_spaces_name_the_same_code() -> None:
    assert classify_class(" 5.01.001 ", 550, NO_RULE, "", TABLE).bounce_class is H
