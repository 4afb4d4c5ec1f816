"""``open_limiter``: the limiter ``[limits]`` asks for, with its metrics and failure policy."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from shared.config import LimitsConfig
from shared.errors import ConfigError
from shared.limits.failover import GuardedLimiter
from shared.limits.local import LocalLimiter
from shared.limits.metrics import LimitsMetrics, LimitsSensor
from shared.limits.rules import Clock


def open_limiter(
    config: LimitsConfig, registry: CollectorRegistry, clock: Clock = time.time
) -> GuardedLimiter:
    """A limiter for ``config``, its metrics on ``registry`` (call once per process).

    No connection is made here: Redis is reached on the first check, so a process starts
    (and, fail-open, serves) while Redis is still coming up. Close it with ``close()``.
    """
    sensor = LimitsSensor(LimitsMetrics(registry))
    if config.backend == "local":
        return GuardedLimiter(LocalLimiter(clock, config.key_prefix), "local", sensor)
    # Imported here so the local backend (make run) never loads the Redis client.
    from shared.limits.redis_limiter import RedisLimiter  # noqa: PLC0415

    try:
        password = RedisLimiter.password_from(config.password_file)
    except (OSError, IndexError) as exc:
        raise ConfigError("limits", "limits.password_file", f"cannot read: {exc}") from exc
    primary = RedisLimiter(
        config.redis_url,
        key_prefix=config.key_prefix,
        timeout=config.timeout,
        clock=clock,
        password=password,
    )
    fallback = None
    if config.on_redis_failure == "open":
        fallback = LocalLimiter(clock, config.key_prefix, share=config.fallback_share)
    return GuardedLimiter(primary, "redis", sensor, fallback)
