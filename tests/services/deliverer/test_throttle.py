"""The throttle state machine and the throttle-reply detector (pure logic)."""

from __future__ import annotations

import pytest

from services.deliverer.config import Policy, Throttling
from services.deliverer.outcome import parse_reply
from services.deliverer.throttle import Throttle, compile_patterns, is_throttle_reply

PATTERNS = compile_patterns(Throttling())


@pytest.mark.parametrize(
    ("code", "text", "throttle"),
    [
        (421, "4.7.0 Try again later", True),
        (421, "Service not available", True),
        (450, "4.7.28 Gmail has detected an unusual rate of mail", True),
        (451, "4.7.650 The mail server has been temporarily rate limited", True),
        (421, "4.7.0 [TSS04] Messages temporarily deferred", True),
        (451, "4.7.1 Greylisted, please try again later", True),
        (450, "4.7.1 Client host rejected: cannot find your hostname", False),
        (452, "4.5.3 Too many recipients", False),
        (451, "4.3.0 Local error", False),
        (550, "5.7.1 rate limit exceeded", False),  # permanent: a bounce, not a throttle
    ],
)
def test_is_throttle_reply(code: int, text: str, throttle: bool) -> None:
    assert is_throttle_reply(parse_reply(code, text), PATTERNS) is throttle


def test_throttle_cuts_suspends_and_ramps_back() -> None:
    cfg = Throttling(backoff=60, max_backoff=240, ramp_after=2)
    t = Throttle(cfg, Policy(max_connections=8, messages_per_minute=600))
    change = t.on_throttle(1000.0)
    assert change is not None and change.action == "throttle"
    assert (t.concurrency, t.rate, t.suspended_until) == (4, 300, 1060.0)
    assert t.suspended(1059.0) and not t.suspended(1060.0)
    assert t.on_throttle(1010.0) is None  # already suspended: the same episode
    assert t.on_throttle(1100.0) is not None  # again: back-off doubles
    assert (t.concurrency, t.rate, t.suspended_until) == (2, 150, 1220.0)
    steps = [t.on_success(1300.0) for _ in range(40)]
    actions = [s.action for s in steps if s is not None]
    assert actions[-1] == "recover" and set(actions[:-1]) == {"ramp"}
    assert (t.concurrency, t.rate, t.throttled) == (8, 600, False)
    assert t.on_success(1400.0) is None


def test_unlimited_rate_gets_a_rate_when_throttled_and_loses_it_on_recovery() -> None:
    t = Throttle(Throttling(ramp_after=1), Policy(max_connections=1))
    t.on_throttle(0.0)
    assert t.rate > 0 and t.concurrency == 1
    while t.throttled:
        t.on_success(100.0)
    assert t.rate == 0


def test_an_operators_cancel_restores_the_policy_at_once() -> None:
    cfg = Throttling(backoff=60, max_backoff=240, ramp_after=2)
    t = Throttle(cfg, Policy(max_connections=8, messages_per_minute=600))
    assert t.cancel() is None  # nothing to cancel
    t.on_throttle(1000.0)
    t.on_throttle(1100.0)  # a second throttle in a row: a longer back-off
    change = t.cancel()
    assert change is not None and change.action == "cancel"
    assert (t.concurrency, t.rate, t.throttled, t.suspended(1100.0)) == (8, 600, False, False)
    again = t.on_throttle(1200.0)  # the next throttle starts from the first back-off
    assert again is not None and again.suspended_until == 1260.0
