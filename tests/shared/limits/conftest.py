"""Fixtures of the limiter suite: every behaviour test runs on LocalLimiter and RedisLimiter.

The Redis runs use the real server from ``redis_url`` with a key prefix of their own, so
tests sharing one server never count each other's checks.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from shared.limits import Limiter
from tests.shared.limits.limiters import LimiterTarget, StepClock


@pytest.fixture
def key_prefix() -> str:
    """A unique Redis key prefix for one test."""
    return f"test:{uuid.uuid4().hex[:10]}:"


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
def limiter_target(request: pytest.FixtureRequest, key_prefix: str) -> LimiterTarget:
    """Which implementation the test runs against."""
    if request.param == "local":
        return LimiterTarget("local")
    return LimiterTarget("redis", str(request.getfixturevalue("redis_url")), key_prefix)


@pytest.fixture
def clock() -> StepClock:
    """The injected clock, standing at a fixed UTC moment."""
    return StepClock()


@pytest.fixture
async def limiter(limiter_target: LimiterTarget, clock: StepClock) -> AsyncIterator[Limiter]:
    """The limiter under test, on ``clock``."""
    opened = limiter_target.open(clock)
    try:
        yield opened
    finally:
        await opened.close()
