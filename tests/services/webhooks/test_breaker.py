"""The circuit breaker and the pause decision (pure; the time is passed in)."""

from __future__ import annotations

from services.webhooks.breaker import CLOSED, HALF_OPEN, OPEN, Breaker


def _breaker() -> Breaker:
    return Breaker(threshold=3, open_for=30.0, pause_failures=5, pause_after=100.0)


def test_opens_after_threshold_failures_in_a_row_and_probes_once() -> None:
    b = _breaker()
    for t in (0.0, 1.0):
        b.failed(t)
        assert b.state(t) == CLOSED and b.allow(t)
    b.failed(2.0)
    assert b.state(2.0) == OPEN and not b.allow(10.0)
    assert b.state(32.0) == HALF_OPEN
    assert b.allow(32.0)  # the probe
    assert not b.allow(32.5)  # only one
    b.failed(33.0)
    assert b.state(40.0) == OPEN
    b2 = _breaker()
    for t in (0.0, 1.0, 2.0):
        b2.failed(t)
    assert b2.allow(40.0)
    b2.succeeded()
    assert b2.state(40.0) == CLOSED and b2.consecutive == 0


def test_a_success_resets_the_run_of_failures() -> None:
    b = _breaker()
    b.failed(0.0)
    b.failed(1.0)
    b.succeeded()
    b.failed(2.0)
    b.failed(3.0)
    assert b.state(3.0) == CLOSED


def test_pause_needs_both_the_count_and_the_duration() -> None:
    b = _breaker()
    for t in range(5):
        b.failed(float(t))
    assert not b.should_pause(50.0)  # five failures, but not for long enough
    assert b.should_pause(100.0)
    b.succeeded()
    assert not b.should_pause(1000.0)
