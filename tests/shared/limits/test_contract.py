"""The limiter contract: the same behaviour from LocalLimiter and RedisLimiter.

Every test runs on both (``limiter`` fixture) with an injected clock that moves only when
the test moves it; dates are fixed UTC moments, never today.
"""

from __future__ import annotations

import pytest

from shared.limits import Limiter, Rule
from tests.shared.limits.limiters import StepClock, utc

RATE = Rule.rate("per_second", 10, period=1.0, burst=5)


async def allowed_of(limiter: Limiter, attempts: int, rules: list[Rule], key: str = "t1") -> int:
    """How many of ``attempts`` checks were allowed."""
    return sum([(await limiter.acquire(key, rules)).allowed for _ in range(attempts)])


async def test_a_burst_passes_at_once_then_the_rate_refuses(limiter: Limiter) -> None:
    assert await allowed_of(limiter, 5, [RATE]) == 5
    verdict = await limiter.acquire("t1", [RATE])
    assert not verdict.allowed
    assert (verdict.rule, verdict.kind) == ("per_second", "rate")
    assert verdict.retry_after == pytest.approx(0.1, abs=0.002)


async def test_the_rate_refills_one_unit_per_interval(limiter: Limiter, clock: StepClock) -> None:
    assert await allowed_of(limiter, 5, [RATE]) == 5
    clock.advance(0.1)
    assert await allowed_of(limiter, 3, [RATE]) == 1
    clock.advance(10.0)  # a long pause refills the burst, never more than it
    assert await allowed_of(limiter, 8, [RATE]) == 5


async def test_a_steady_sender_at_the_rate_is_never_refused(
    limiter: Limiter, clock: StepClock
) -> None:
    for _ in range(50):
        assert (await limiter.acquire("t1", [RATE])).allowed
        clock.advance(0.1)


async def test_twice_the_rate_gets_the_rate(limiter: Limiter, clock: StepClock) -> None:
    allowed = 0
    for _ in range(200):  # 200 attempts over 10 s: 10/s + the burst of 5
        allowed += (await limiter.acquire("t1", [RATE])).allowed
        clock.advance(0.05)
    assert allowed == pytest.approx(105, abs=2)


async def test_a_cost_counts_as_that_many_units(limiter: Limiter) -> None:
    assert (await limiter.acquire("t1", [RATE], cost=3)).allowed
    assert not (await limiter.acquire("t1", [RATE], cost=3)).allowed
    assert (await limiter.acquire("t1", [RATE], cost=2)).allowed


async def test_keys_count_apart(limiter: Limiter) -> None:
    assert await allowed_of(limiter, 6, [RATE], key="a") == 5
    assert await allowed_of(limiter, 6, [RATE], key="b") == 5


@pytest.mark.parametrize(
    ("window", "before", "boundary"),
    [
        ("hour", utc(2024, 6, 12, 10, 59, 58), utc(2024, 6, 12, 11)),
        ("day", utc(2024, 12, 31, 23, 59, 58), utc(2025, 1, 1)),
        ("month", utc(2024, 2, 29, 23, 59, 58), utc(2024, 3, 1)),  # leap day
        ("month", utc(2024, 12, 31, 23, 59, 58), utc(2025, 1, 1)),  # new year
    ],
)
async def test_a_quota_starts_over_on_the_utc_boundary(
    limiter: Limiter, clock: StepClock, window: str, before: float, boundary: float
) -> None:
    clock.now = before
    quota = Rule.quota(f"per_{window}", 3, window)  # type: ignore[arg-type]
    assert await allowed_of(limiter, 5, [quota]) == 3
    verdict = await limiter.acquire("t1", [quota])
    assert (verdict.allowed, verdict.rule, verdict.kind) == (False, f"per_{window}", "quota")
    assert verdict.reset_at == pytest.approx(boundary, abs=0.002)
    assert verdict.retry_after == pytest.approx(2.0, abs=0.002)
    clock.advance(1.0)  # still the same window
    assert not (await limiter.acquire("t1", [quota])).allowed
    clock.now = boundary
    assert await allowed_of(limiter, 5, [quota]) == 3


async def test_a_quota_refusal_consumes_no_rate(limiter: Limiter) -> None:
    rate = Rule.rate("per_second", 10, burst=10)
    quota = Rule.quota("per_day", 2, "day")
    assert await allowed_of(limiter, 20, [rate, quota]) == 2
    # The 18 refused by the quota left the rate's burst alone: 8 of 10 remain.
    assert await allowed_of(limiter, 20, [rate]) == 8


async def test_a_rate_refusal_consumes_no_quota(limiter: Limiter, clock: StepClock) -> None:
    rate = Rule.rate("per_second", 10, burst=2)
    quota = Rule.quota("per_day", 5, "day")
    assert await allowed_of(limiter, 10, [rate, quota]) == 2
    clock.advance(60.0)
    assert await allowed_of(limiter, 10, [quota]) == 3


async def test_the_rule_that_frees_up_last_is_named(limiter: Limiter) -> None:
    rate = Rule.rate("per_second", 1, burst=1)
    quota = Rule.quota("per_day", 1, "day")
    assert (await limiter.acquire("t1", [rate, quota])).allowed
    verdict = await limiter.acquire("t1", [rate, quota])
    assert (verdict.rule, verdict.kind) == ("per_day", "quota")


async def test_no_rules_always_allow(limiter: Limiter) -> None:
    assert (await limiter.acquire("t1", [])).allowed


async def test_bad_checks_are_refused_before_counting(limiter: Limiter) -> None:
    with pytest.raises(ValueError, match="differ"):
        await limiter.acquire("t1", [RATE, RATE])
    with pytest.raises(ValueError, match="cost"):
        await limiter.acquire("t1", [RATE], cost=-1)
