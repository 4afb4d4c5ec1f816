"""A scope's level from its counts: min volume, pause, warning, hysteresis, a tenant's own."""

from __future__ import annotations

import pytest

from services.reputation.config import ReputationConfig
from services.reputation.levels import Thresholds, Verdict, judge
from shared.wire.records import ReputationCounts, ReputationThresholds

GLOBAL = Thresholds.of(ReputationConfig(), ReputationThresholds())


def level(counts: ReputationCounts, current: str = "ok", may_pause: bool = True) -> Verdict:
    return judge(
        counts, GLOBAL, current=current, may_pause=may_pause, recover_ratio=0.8, window_hours=24
    )


def sent(n: int, *, hard: int = 0, blocks: int = 0, complaints: int = 0) -> ReputationCounts:
    return ReputationCounts(
        sent=n,
        delivered=n - hard - blocks,
        hard_bounces=hard,
        blocks=blocks,
        complaints=complaints,
    )


def test_the_defaults_are_ses_levels() -> None:
    assert (GLOBAL.bounce_warning, GLOBAL.bounce_pause) == (0.05, 0.10)
    assert (GLOBAL.complaint_warning, GLOBAL.complaint_pause) == (0.001, 0.005)
    assert (GLOBAL.block_warning, GLOBAL.block_pause, GLOBAL.min_messages) == (0.05, 0.20, 200)


def test_under_min_messages_no_rate_counts() -> None:
    assert level(sent(199, hard=100)) == Verdict("ok")


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        (sent(500, hard=71), Verdict("paused", "hard bounce rate 14.2% over 24h (71 of 500)")),
        (sent(500, hard=50), Verdict("paused", "hard bounce rate 10.0% over 24h (50 of 500)")),
        (sent(500, hard=49), Verdict("warning", "hard bounce rate 9.8% over 24h (49 of 500)")),
        (sent(1000, complaints=5), Verdict("paused", "complaint rate 0.50% over 24h (5 of 1000)")),
        (sent(1000, complaints=1), Verdict("warning", "complaint rate 0.10% over 24h (1 of 1000)")),
        (sent(1000, blocks=200), Verdict("paused", "block rate 20.0% over 24h (200 of 1000)")),
        (sent(1000, blocks=60), Verdict("warning", "block rate 6.0% over 24h (60 of 1000)")),
        (sent(1000, hard=10), Verdict("ok")),
    ],
)
def test_levels_name_the_rate_and_the_counts(counts: ReputationCounts, expected: Verdict) -> None:
    assert level(counts) == expected


def test_a_scope_that_may_not_be_paused_is_warned() -> None:
    assert level(sent(500, hard=100), may_pause=False).level == "warning"


def test_a_pause_holds_whatever_the_rates() -> None:
    assert level(sent(1000), current="paused") == Verdict("paused")


def test_a_warning_ends_only_under_the_recovery_share() -> None:
    # 4.5% is under the 5% warning level but over 80% of it: still a warning.
    assert level(sent(1000, hard=45), current="warning").level == "warning"
    assert level(sent(1000, hard=45), current="ok").level == "ok"
    assert level(sent(1000, hard=39), current="warning").level == "ok"


def test_a_tenants_own_thresholds_override_field_by_field() -> None:
    own = ReputationThresholds(bounce_pause=0.03, bounce_warning=0.02, min_messages=10)
    mine = Thresholds.of(ReputationConfig(), own)
    assert (mine.bounce_pause, mine.complaint_pause, mine.min_messages) == (0.03, 0.005, 10)
    verdict = judge(
        sent(20, hard=1), mine, current="ok", may_pause=True, recover_ratio=0.8, window_hours=24
    )
    assert verdict.level == "paused"


def test_rates_count_from_exactly_min_messages() -> None:
    assert level(sent(200, hard=100)).level == "paused"
    assert level(sent(199, hard=100)).level == "ok"


def test_a_warning_stays_exactly_at_the_recovery_rate() -> None:
    def judged(hard: int) -> str:
        counts = sent(1000, hard=hard)
        return judge(
            counts, GLOBAL, current="warning", may_pause=True, recover_ratio=0.5, window_hours=24
        ).level

    # 0.05 x 0.5 = 0.025 (exact in binary floating point, as 25/1000 is rounded the same way).
    assert (judged(25), judged(24)) == ("warning", "ok")
