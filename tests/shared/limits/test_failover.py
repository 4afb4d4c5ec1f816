"""Redis out of reach: fail-open decides in process and counts it, fail-closed raises.

"Down" is a loopback port nobody listens on; "slow" is a loopback server that accepts and
never answers, so the limiter's own deadline (limits.timeout) is what ends the check.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from shared.config import LimitsConfig
from shared.errors import LimiterUnavailable
from shared.limits import Rule, open_limiter
from tests.shared.limits.limiters import StepClock

QUOTA = Rule.quota("per_day", 4, "day")


def closed_port() -> int:
    """A loopback port with no listener (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A loopback server that accepts connections and never answers."""

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def failures(registry: CollectorRegistry, action: str) -> float:
    value = registry.get_sample_value("postline_limits_redis_failures_total", {"action": action})
    return value or 0.0


def redis_config(port: int, policy: str, **extra: object) -> LimitsConfig:
    return LimitsConfig(
        backend="redis",
        redis_url=f"redis://127.0.0.1:{port}/0",
        timeout=0.05,
        on_redis_failure=policy,  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


async def test_fail_open_decides_locally_and_counts() -> None:
    registry = CollectorRegistry()
    limiter = open_limiter(redis_config(closed_port(), "open"), registry, StepClock())
    try:
        verdicts = [await limiter.acquire("t1", [QUOTA]) for _ in range(6)]
    finally:
        await limiter.close()
    assert [v.allowed for v in verdicts] == [True] * 4 + [False] * 2
    assert all(v.local for v in verdicts)
    assert failures(registry, "local") == 6
    assert failures(registry, "refused") == 0


async def test_fail_open_enforces_the_fallback_share() -> None:
    registry = CollectorRegistry()
    config = redis_config(closed_port(), "open", fallback_share=0.5)
    limiter = open_limiter(config, registry, StepClock())
    try:
        allowed = [(await limiter.acquire("t1", [QUOTA])).allowed for _ in range(6)]
    finally:
        await limiter.close()
    assert sum(allowed) == 2


async def test_fail_closed_raises_and_counts() -> None:
    registry = CollectorRegistry()
    limiter = open_limiter(redis_config(closed_port(), "closed"), registry, StepClock())
    try:
        with pytest.raises(LimiterUnavailable):
            await limiter.acquire("t1", [QUOTA])
    finally:
        await limiter.close()
    assert failures(registry, "refused") == 1


async def test_a_silent_redis_fails_within_the_timeout(silent_port: int) -> None:
    registry = CollectorRegistry()
    limiter = open_limiter(redis_config(silent_port, "closed"), registry, StepClock())
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(LimiterUnavailable, match="within"):
            await limiter.acquire("t1", [QUOTA])
    finally:
        await limiter.close()
    # Generous upper bound (a slow machine must not fail this): far below a socket timeout.
    assert loop.time() - started < 0.9


@pytest.mark.redis
async def test_redis_answering_counts_no_failure(redis_url: str, key_prefix: str) -> None:
    registry = CollectorRegistry()
    config = LimitsConfig(backend="redis", redis_url=redis_url, key_prefix=key_prefix, timeout=5)
    limiter = open_limiter(config, registry, StepClock())
    try:
        verdict = await limiter.acquire("t1", [QUOTA])
    finally:
        await limiter.close()
    assert verdict.allowed and not verdict.local
    assert failures(registry, "local") == failures(registry, "refused") == 0
    count = registry.get_sample_value("postline_limits_check_seconds_count", {"backend": "redis"})
    assert count == 1


async def test_the_local_backend_needs_no_redis() -> None:
    registry = CollectorRegistry()
    limiter = open_limiter(LimitsConfig(), registry, StepClock())
    try:
        assert sum([(await limiter.acquire("t1", [QUOTA])).allowed for _ in range(6)]) == 4
    finally:
        await limiter.close()
    count = registry.get_sample_value("postline_limits_check_seconds_count", {"backend": "local"})
    assert count == 6
