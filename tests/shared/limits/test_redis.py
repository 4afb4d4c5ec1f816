"""RedisLimiter beyond the contract: two processes sharing one limit, keys that expire,
the script surviving a Redis restart (SCRIPT FLUSH)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from shared.limits import Rule
from shared.limits.redis_limiter import RedisLimiter
from tests.shared.limits.limiters import StepClock

pytestmark = pytest.mark.redis

CHILD = Path(__file__).with_name("limits_child.py")


async def run_children(count: int, *args: str) -> list[int]:
    """Start ``count`` children together; each one's allowed count."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(CHILD), *args, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(count)
    ]
    outputs = await asyncio.gather(*(proc.communicate() for proc in procs))
    assert [proc.returncode for proc in procs] == [0] * count
    return [int(out.decode().strip()) for out, _ in outputs]


async def test_two_processes_share_one_quota(redis_url: str, key_prefix: str) -> None:
    clock = StepClock()
    counts = await run_children(
        2,
        *("--url", redis_url, "--prefix", key_prefix, "--rule", "quota:per_day:300:day"),
        *("--attempts", "400", "--start", repr(clock.now)),
    )
    # Each alone could have taken 300; together they get the one quota (the script is atomic,
    # so exactly 300, well within the 10% the issue allows): with a counter per process the
    # sum would be 600. How the 300 split between them is the scheduler's business (on a
    # loaded machine one child can finish before the other starts), so it is not asserted.
    assert sum(counts) == 300
    assert len(counts) == 2


async def test_two_processes_share_one_rate(redis_url: str, key_prefix: str) -> None:
    clock = StepClock()
    # Each child makes 400 checks over 4 s of its injected clock (one every 10 ms) against
    # 20/s with a burst of 10: one process alone gets 10 + 20 * 4 = 90, and two together
    # must get the same 90, not 180, whatever the interleaving.
    counts = await run_children(
        2,
        *("--url", redis_url, "--prefix", key_prefix, "--rule", "rate:per_second:20:1:10"),
        *("--attempts", "400", "--start", repr(clock.now), "--step", "0.01"),
    )
    assert sum(counts) == pytest.approx(90, rel=0.10)


async def test_every_key_expires(redis_url: str, key_prefix: str) -> None:
    clock = StepClock()
    limiter = RedisLimiter(redis_url, key_prefix=key_prefix, clock=clock, timeout=5.0)
    rules = [Rule.rate("per_second", 10), Rule.quota("per_month", 100, "month")]
    await limiter.acquire("t1", rules)
    await limiter.close()
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{key_prefix}*")]
        assert len(keys) == 2
        ttls = [await client.pttl(key) for key in keys]
        assert all(ttl > 0 for ttl in ttls), ttls
    finally:
        await client.aclose()


async def test_the_script_is_loaded_again_after_a_flush(redis_url: str, key_prefix: str) -> None:
    limiter = RedisLimiter(redis_url, key_prefix=key_prefix, clock=StepClock(), timeout=5.0)
    client = aioredis.Redis.from_url(redis_url)
    try:
        rule = Rule.quota("per_day", 2, "day")
        assert (await limiter.acquire("t1", [rule])).allowed
        await client.script_flush()  # what a restarted or failed-over Redis looks like
        assert (await limiter.acquire("t1", [rule])).allowed
        assert not (await limiter.acquire("t1", [rule])).allowed
    finally:
        await client.aclose()
        await limiter.close()
