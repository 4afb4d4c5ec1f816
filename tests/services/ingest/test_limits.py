"""Token buckets and the AUTH failure log, on a fake clock."""

from __future__ import annotations

from services.ingest.ratelimit import FailureLog, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_burst_then_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(4)] == [True, True, True, False]
    assert buckets.take("b")  # keys are independent
    clock.now = 0.5  # one token back
    assert buckets.take("a") and not buckets.take("a")
    clock.now = 100.0  # never more than the burst
    assert [buckets.take("a") for _ in range(4)] == [True, True, True, False]


def test_rate_zero_is_unlimited() -> None:
    buckets = TokenBuckets(rate=0.0, burst=1)
    assert all(buckets.take("a") for _ in range(1000))


def test_failure_log_window() -> None:
    clock = Clock()
    log = FailureLog(limit=3, window=60.0, clock=clock)
    assert not log.fail("ip") and not log.fail("ip")
    assert not log.blocked("ip")
    assert log.fail("ip") and log.blocked("ip") and not log.blocked("other")
    clock.now = 61.0
    assert not log.blocked("ip")
