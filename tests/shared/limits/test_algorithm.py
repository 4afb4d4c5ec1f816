"""The arithmetic every limiter shares (``shared.limits.algorithm``), pinned at its edges:
the storage keys, the plan's steps (emission interval, burst, a quota's window and TTL with
its minute of slack), GCRA refusing from the first millisecond over, the rule named on a tie,
and the TTL of a written TAT (pure logic, fixed times)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.limits.algorithm import (
    QUOTA_SLACK_MS,
    Decision,
    Step,
    decide,
    plan,
    storage_key,
    ttl_ms,
)
from shared.limits.rules import Rule

# 2024-06-12 10:30:00.250 UTC: the day started at 00:00, ends 13h29m59.75s later.
NOW = datetime(2024, 6, 12, 10, 30, tzinfo=UTC).timestamp() + 0.25
DAY_START = datetime(2024, 6, 12, tzinfo=UTC).timestamp()
DAY_END = datetime(2024, 6, 13, tzinfo=UTC).timestamp()
NOW_MS = NOW * 1000.0

PER_SECOND = Rule.rate("per_second", 10, period=2.0, burst=3)  # T = 200 ms
PER_DAY = Rule.quota("per_day", 500, "day")


def test_storage_keys() -> None:
    assert storage_key("pl:", "shop", PER_SECOND, NOW) == "pl:{shop}:per_second"
    assert storage_key("pl:", "shop", PER_DAY, NOW) == f"pl:{{shop}}:per_day:{int(DAY_START)}"


def test_the_plan_of_a_rate_and_a_quota() -> None:
    left = DAY_END * 1000.0 - NOW_MS
    assert left == 48_599_750.0
    assert QUOTA_SLACK_MS == 60_000
    assert plan("pl:", "shop", [PER_SECOND, PER_DAY], NOW) == [
        Step(PER_SECOND, "pl:{shop}:per_second", 200.0, 600.0, 0),
        Step(PER_DAY, f"pl:{{shop}}:per_day:{int(DAY_START)}", 500, left, 48_599_750 + 60_000),
    ]


def test_a_quota_s_ttl_rounds_the_window_s_rest_up() -> None:
    [step] = plan("pl:", "k", [PER_DAY], NOW + 0.0004)  # 48 599 749.6 ms left
    assert step.ttl_ms == 48_599_750 + 60_000


def _rate_step(interval: float = 1000.0, burst: int = 1) -> Step:
    rule = Rule.rate("r", 1, period=interval / 1000.0, burst=burst)
    return Step(rule, "k", interval, interval * burst, 0)


def test_an_unseen_key_allows_and_nothing_waits() -> None:
    decision = decide([None], [_rate_step()], 5000.0, 1)
    assert decision == Decision(-1, 0.0, [6000.0])


def test_gcra_refuses_from_the_first_fraction_of_a_millisecond_over() -> None:
    step = _rate_step(interval=1000.0, burst=1)
    # TAT half a millisecond ahead: one more unit would end 0.5 ms past the tolerance.
    decision = decide([5000.5], [step], 5000.0, 1)
    assert decision == Decision(0, 0.5, [6000.5])
    # TAT exactly now: fits.
    assert decide([5000.0], [step], 5000.0, 1) == Decision(-1, 0.0, [6000.0])
    # A TAT in the past counts from now (the unused time is not saved up).
    assert decide([1000.0], [step], 5000.0, 1) == Decision(-1, 0.0, [6000.0])


def test_a_quota_refuses_past_its_limit_until_the_window_ends() -> None:
    rule = Rule.quota("q", 3, "day")
    step = Step(rule, "k", 3, 1234.0, 99)
    assert decide([2.0], [step], 0.0, 1) == Decision(-1, 0.0, [3.0])
    assert decide([3.0], [step], 0.0, 1) == Decision(0, 1234.0, [4.0])
    assert decide([None], [step], 0.0, 3) == Decision(-1, 0.0, [3.0])


def test_on_a_tie_the_first_refusing_rule_is_named() -> None:
    a = Step(Rule.quota("a", 1, "day"), "ka", 1, 700.0, 1)
    b = Step(Rule.quota("b", 1, "day"), "kb", 1, 700.0, 1)
    c = Step(Rule.quota("c", 1, "day"), "kc", 1, 900.0, 1)
    assert decide([1.0, 1.0], [a, b], 0.0, 1).refused == 0
    assert decide([1.0, 1.0, 1.0], [a, b, c], 0.0, 1) == Decision(2, 900.0, [2.0, 2.0, 2.0])


def test_stored_values_and_steps_must_pair_up() -> None:
    with pytest.raises(ValueError):
        decide([None], [_rate_step(), _rate_step()], 0.0, 1)


@pytest.mark.parametrize(
    ("value", "expected"), [(5000.0, 1), (5000.2, 1), (5001.0, 1), (5001.2, 2), (6500.0, 1500)]
)
def test_a_tat_lives_until_it_passes_at_least_a_millisecond(value: float, expected: int) -> None:
    assert ttl_ms(_rate_step(), value, 5000.0) == expected


def test_a_count_lives_its_planned_ttl() -> None:
    step = Step(PER_DAY, "k", 500, 10.0, 60_010)
    assert ttl_ms(step, 3.0, 5000.0) == 60_010
