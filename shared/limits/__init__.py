"""Rate limits and quotas shared by every replica (Redis) or held in process (local).

One call per check: ``await limiter.acquire(key, rules, cost)`` consumes ``cost`` under
every rule or, when one refuses, nothing at all, and returns a :class:`Verdict` naming the
refusing rule and when it frees up. The callers (ingest) decide what a refusal means in
SMTP; this package decides only whether.

    rules.py          Rule (rate with burst, or calendar quota), Verdict, the Limiter protocol
    algorithm.py      GCRA and fixed windows, written once; keys and their lifetimes
    script.py         the same decision as one Lua script, run atomically in Redis
    local.py          LocalLimiter: in process (embedded bus, fail-open fallback)
    redis_limiter.py  RedisLimiter: EVALSHA per check; any Redis failure is LimiterUnavailable
    failover.py       fail-open / fail-closed, timing and counting every check
    metrics.py        postline_limits_* series and the sensor that feeds them
    factory.py        open_limiter(config, registry)
"""

from shared.errors import LimiterUnavailable
from shared.limits.factory import open_limiter
from shared.limits.failover import GuardedLimiter
from shared.limits.local import LocalLimiter
from shared.limits.rules import ALLOWED, Clock, Limiter, Rule, Verdict, window_bounds

__all__ = [
    "ALLOWED",
    "Clock",
    "GuardedLimiter",
    "Limiter",
    "LimiterUnavailable",
    "LocalLimiter",
    "Rule",
    "Verdict",
    "open_limiter",
    "window_bounds",
]
