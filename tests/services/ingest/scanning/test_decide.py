"""What each of rspamd's actions does to a message under each mode (a pure table)."""

from __future__ import annotations

import pytest

from services.ingest.scanning.decide import Outcome, decide
from services.ingest.scanning.rspamd import Verdict


def verdict(action: str, score: float = 0.0, skipped: bool = False) -> Verdict:
    return Verdict(action=action, score=score, required=15.0, symbols={}, skipped=skipped)


@pytest.mark.parametrize(
    ("action", "score", "enforce", "tag"),
    [
        ("no action", 0.5, Outcome.CLEAN, Outcome.CLEAN),
        ("greylist", 4.5, Outcome.SOFT_REJECTED, Outcome.TAGGED),
        ("add header", 7.0, Outcome.TAGGED, Outcome.TAGGED),
        ("rewrite subject", 9.0, Outcome.TAGGED, Outcome.TAGGED),
        ("soft reject", 2.0, Outcome.SOFT_REJECTED, Outcome.TAGGED),
        ("reject", 20.0, Outcome.REJECTED, Outcome.TAGGED),
    ],
)
def test_every_action_in_both_modes(
    action: str, score: float, enforce: Outcome, tag: Outcome
) -> None:
    assert decide(verdict(action, score), "enforce", 0.0) is enforce
    assert decide(verdict(action, score), "tag", 0.0) is tag


def test_the_quarantine_band_lies_below_reject_and_above_its_threshold() -> None:
    assert decide(verdict("add header", 8.0), "enforce", 8.0) is Outcome.QUARANTINED
    assert decide(verdict("no action", 3.0), "enforce", 2.5) is Outcome.QUARANTINED
    assert decide(verdict("add header", 7.9), "enforce", 8.0) is Outcome.TAGGED
    # rspamd's own reject and soft reject win over the band: the client learns at once.
    assert decide(verdict("reject", 30.0), "enforce", 8.0) is Outcome.REJECTED
    assert decide(verdict("soft reject", 9.0), "enforce", 8.0) is Outcome.SOFT_REJECTED
    # Tag mode never holds mail back.
    assert decide(verdict("add header", 9.0), "tag", 8.0) is Outcome.TAGGED


def test_a_message_rspamd_skipped_is_skipped_unless_a_pre_result_set_an_action() -> None:
    assert decide(verdict("no action", 0.0, skipped=True), "enforce", 0.0) is Outcome.SKIPPED
    # GTUBE is a pre-result: rspamd skips its other rules and answers reject, skipped.
    assert decide(verdict("reject", 15.0, skipped=True), "enforce", 0.0) is Outcome.REJECTED


def test_only_reject_and_soft_reject_refuse_the_client() -> None:
    assert {o for o in Outcome if o.refused} == {Outcome.REJECTED, Outcome.SOFT_REJECTED}
