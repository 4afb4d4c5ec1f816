"""The limiter's metrics and the small sensor the limiter reports through.

Declared once on the registry passed in (no global registry). The limiter never touches a
series itself: it calls :class:`LimitsSensor`, which owns the names and labels.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_CHECK_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class LimitsMetrics:
    """Series of the rate limits and quotas shared by the cluster (``[limits]``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.redis_failures = Counter(
            "postline_limits_redis_failures_total",
            "Limit checks Redis did not answer (unreachable, error, or slower than "
            "limits.timeout), by what was done instead: local (fail-open: decided in this "
            "process, so replicas no longer share the limit) or refused (fail-closed: the "
            "client got 451). Any sustained rate means Redis is down: alert on it.",
            ["action"],
            registry=registry,
        )
        self.check_seconds = Histogram(
            "postline_limits_check_seconds",
            "Time one limit check took, by backend (redis: one EVALSHA round trip; local: in "
            "process). A p99 near limits.timeout means Redis is slow and checks will soon "
            "fail over.",
            ["backend"],
            buckets=_CHECK_BUCKETS,
            registry=registry,
        )


class LimitsSensor:
    """What the limiter reports; the series behind it live in :class:`LimitsMetrics`."""

    def __init__(self, metrics: LimitsMetrics) -> None:
        self._metrics = metrics

    def checked(self, backend: str, seconds: float) -> None:
        """One check answered by ``backend`` ("redis" or "local") in ``seconds``."""
        self._metrics.check_seconds.labels(backend=backend).observe(seconds)

    def redis_failed(self, action: str) -> None:
        """Redis failed one check; ``action`` is "local" (fail-open) or "refused"."""
        self._metrics.redis_failures.labels(action=action).inc()
