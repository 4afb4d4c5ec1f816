"""RedisLimiter: limits shared by every replica, one Lua script (EVALSHA) per check.

The script (:mod:`shared.limits.script`) is registered once with redis-py's
``register_script``, which sends ``EVALSHA`` and loads the script on ``NOSCRIPT`` (after a
Redis restart or failover). Every failure of Redis (refused connection, timeout, an error
reply) becomes :class:`~shared.errors.LimiterUnavailable`; deciding what to do then (fall
back or refuse) is :mod:`shared.limits.failover`'s business, not this module's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shared.errors import LimiterUnavailable
from shared.limits.algorithm import plan
from shared.limits.rules import ALLOWED, Clock, Rule, Verdict, check_rules
from shared.limits.script import CHECK

_KIND_ARG = {"rate": "r", "quota": "q"}


def redis_client(url: str, *, timeout: float, password: str | None = None) -> aioredis.Redis:
    """A pooled client for ``url`` whose callers keep their own deadline of ``timeout``
    seconds (``asyncio.timeout``): the socket timeouts, never under a second, only make sure
    a dead connection is noticed and dropped from the pool rather than reused."""
    return aioredis.Redis.from_url(
        url,
        password=password,
        socket_timeout=max(timeout, 1.0),
        socket_connect_timeout=max(timeout, 1.0),
        health_check_interval=30,
    )


class RedisLimiter:
    """Limits in Redis at ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "postline:limits:",
        timeout: float = 0.05,
        clock: Clock = time.time,
        password: str | None = None,
    ) -> None:
        self._prefix = key_prefix
        self._timeout = timeout
        self._clock = clock
        self._client = redis_client(url, timeout=timeout, password=password)
        self._check: Any = self._client.register_script(CHECK)

    @classmethod
    def password_from(cls, path: Path | None) -> str | None:
        """The first line of ``path`` (``limits.password_file``), or None."""
        if path is None:
            return None
        return path.read_text(encoding="utf-8").splitlines()[0].strip()

    async def acquire(self, key: str, rules: Sequence[Rule], cost: int = 1) -> Verdict:
        """See :meth:`shared.limits.rules.Limiter.acquire`; raises ``LimiterUnavailable``."""
        check_rules(rules, cost)
        if not rules:
            return ALLOWED
        now = self._clock()
        steps = plan(self._prefix, key, rules, now)
        args: list[str | int | float] = [repr(now * 1000.0), cost]
        for step in steps:
            args += [_KIND_ARG[step.rule.kind], repr(step.a), repr(step.b), step.ttl_ms]
        try:
            async with asyncio.timeout(self._timeout):
                reply = await self._check(keys=[step.key for step in steps], args=args)
        except TimeoutError as exc:
            raise LimiterUnavailable(f"redis did not answer within {self._timeout:g}s") from exc
        except (RedisError, OSError) as exc:
            raise LimiterUnavailable(f"redis: {exc}") from exc
        allowed, index, wait_ms = (int(x) for x in reply)
        if allowed:
            return ALLOWED
        return Verdict.refused(rules[index - 1], now, wait_ms / 1000.0)

    async def used(self, key: str, rules: Sequence[Rule]) -> dict[str, int]:
        """See :meth:`shared.limits.rules.Limiter.used`; raises ``LimiterUnavailable``."""
        steps = plan(self._prefix, key, [r for r in rules if r.kind == "quota"], self._clock())
        if not steps:
            return {}
        try:
            async with asyncio.timeout(self._timeout):
                values = await self._client.mget([step.key for step in steps])
        except (TimeoutError, RedisError, OSError) as exc:
            raise LimiterUnavailable(f"redis: {exc or 'timeout'}") from exc
        return {s.rule.name: int(float(v or 0)) for s, v in zip(steps, values, strict=True)}

    async def ping(self) -> None:
        """Raise ``LimiterUnavailable`` unless Redis answers PING within the timeout."""
        try:
            async with asyncio.timeout(self._timeout):
                await cast("Awaitable[bool]", self._client.ping())
        except (TimeoutError, RedisError, OSError) as exc:
            raise LimiterUnavailable(f"redis: {exc or 'timeout'}") from exc

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
