"""The throttle state machine step by step: the exact ramp schedule back to the policy, a
rate that may never pass the policy's, an unlimited destination's start rate and the point
where it is unlimited again, the floor of one message a minute, a policy change while
throttled, the operator's cancel, and which 4yz replies count as a throttle (pure logic)."""

from __future__ import annotations

import pytest

from services.deliverer.config import Policy, Throttling
from services.deliverer.outcome import parse_reply
from services.deliverer.throttle import (
    Throttle,
    ThrottleChange,
    compile_patterns,
    is_throttle_reply,
)
from shared.config import Duration

PATTERNS = compile_patterns(Throttling())


def _steps(t: Throttle, n: int) -> list[tuple[str, int, float] | None]:
    out: list[tuple[str, int, float] | None] = []
    for _ in range(n):
        change = t.on_success(5000.0)
        out.append(None if change is None else (change.action, change.concurrency, change.rate))
    return out


def test_the_ramp_schedule_back_to_the_policy() -> None:
    t = Throttle(Throttling(ramp_after=3), Policy(max_connections=8, messages_per_minute=600))
    t.on_throttle(1000.0)
    assert (t.concurrency, t.rate) == (4, 300.0)
    assert _steps(t, 13) == [
        None,
        None,
        ("ramp", 5, 450.0),  # every third success: one connection more, rate x 1.5
        None,
        None,
        ("ramp", 6, 600.0),  # 675 would pass the policy's 600
        None,
        None,
        ("ramp", 7, 600.0),
        None,
        None,
        ("recover", 8, 600.0),
        None,  # not throttled any more: nothing to count
    ]
    assert t.throttled is False


def test_a_throttle_starts_the_count_of_successes_afresh() -> None:
    t = Throttle(Throttling(ramp_after=2), Policy(max_connections=8, messages_per_minute=600))
    t.on_throttle(1000.0)
    assert _steps(t, 1) == [None]
    t.on_throttle(2000.0)  # one success counted before: forgotten
    assert t.rate == 150.0 and t.concurrency == 2
    assert _steps(t, 2) == [None, ("ramp", 3, 225.0)]


def test_an_unlimited_destination_starts_at_60_a_minute_and_is_unlimited_from_960() -> None:
    t = Throttle(Throttling(ramp_after=1), Policy(max_connections=1))
    change = t.on_throttle(1000.0)
    assert change == ThrottleChange("throttle", 1, 60.0, 1060.0)
    rates = [step[2] for step in _steps(t, 8) if step is not None]
    assert rates == [90.0, 135.0, 202.5, 303.75, 455.625, 683.4375, 0.0]
    assert t.throttled is False


def test_unlimited_again_exactly_at_eight_times_the_start_rate() -> None:
    t = Throttle(Throttling(ramp_after=1), Policy(max_connections=1, messages_per_minute=1280))
    t.on_throttle(1000.0)  # 640 a minute
    t.set_policy(Policy(max_connections=1))  # the provider became known: unlimited
    assert t.rate == 640.0  # the throttle stays
    assert _steps(t, 1) == [("recover", 1, 0.0)]  # 960: unlimited again


def test_a_high_policy_rate_is_reached_step_by_step() -> None:
    t = Throttle(Throttling(ramp_after=1), Policy(max_connections=1, messages_per_minute=2000))
    t.on_throttle(1000.0)
    assert _steps(t, 2) == [("ramp", 1, 1500.0), ("recover", 1, 2000.0)]


def test_the_rate_never_falls_below_one_a_minute_nor_passes_the_policy() -> None:
    t = Throttle(Throttling(ramp_after=1), Policy(max_connections=2, messages_per_minute=1))
    change = t.on_throttle(1000.0)
    assert change is not None and (change.concurrency, change.rate) == (1, 1.0)
    assert _steps(t, 1) == [("recover", 2, 1.0)]  # 1.5 would pass the policy's 1


def test_a_one_second_back_off_still_throttles() -> None:
    t = Throttle(Throttling(backoff=Duration(1), ramp_after=1), Policy(max_connections=2))
    t.on_throttle(1000.0)
    assert t.throttled is True
    assert t.suspended_until == 1001.0
    assert _steps(t, 1) == [("ramp", 2, 90.0)]


def test_a_policy_change_applies_at_once_unless_throttled() -> None:
    t = Throttle(Throttling(), Policy(max_connections=8, messages_per_minute=600))
    t.set_policy(Policy(max_connections=3, messages_per_minute=100))
    assert (t.concurrency, t.rate) == (3, 100.0)
    t.on_throttle(1000.0)  # 1 connection, 50 a minute
    t.set_policy(Policy(max_connections=20, messages_per_minute=900))
    assert (t.concurrency, t.rate) == (1, 50.0)  # the throttle stays
    t2 = Throttle(Throttling(), Policy(max_connections=8, messages_per_minute=600))
    t2.on_throttle(1000.0)  # 4 connections
    t2.set_policy(Policy(max_connections=2))
    assert (t2.concurrency, t2.rate) == (2, 300.0)  # fewer allowed now: at most that


def test_a_cancel_ends_the_suspension_at_once() -> None:
    t = Throttle(Throttling(), Policy(max_connections=8, messages_per_minute=600))
    t.on_throttle(1000.0)
    change = t.cancel()
    assert change == ThrottleChange("cancel", 8, 600.0, 0.0)
    assert t.suspended_until == 0.0 and not t.suspended(0.5)


def test_describe() -> None:
    assert ThrottleChange("throttle", 4, 300.0, 1.0).describe() == (
        "throttle: concurrency=4 rate=300.0/min"
    )
    assert ThrottleChange("recover", 8, 0.0, 1.0).describe() == (
        "recover: concurrency=8 rate=unlimited"
    )
    assert ThrottleChange("ramp", 1, 1.0, 1.0).describe() == "ramp: concurrency=1 rate=1.0/min"


@pytest.mark.parametrize(
    ("code", "text", "throttle"),
    [
        (400, "4.7.0 rate limit exceeded", True),  # any 4yz with 4.7.x
        (499, "4.7.0 rate limit exceeded", True),
        (451, "4.4.5 temporarily rate limited", False),  # not 4.7.x: not a throttle
        (554, "5.7.1 try again later", False),
    ],
)
def test_which_replies_throttle(code: int, text: str, throttle: bool) -> None:
    assert is_throttle_reply(parse_reply(code, text), PATTERNS) is throttle
