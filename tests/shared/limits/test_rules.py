"""Rules, calendar windows and the [limits] config: the pure parts."""

from __future__ import annotations

import pytest

from shared.config import load_config
from shared.errors import ConfigError
from shared.limits import Rule, window_bounds
from tests.shared.limits.limiters import utc


@pytest.mark.parametrize(
    ("now", "window", "start", "end"),
    [
        (utc(2024, 6, 12, 10, 30), "hour", utc(2024, 6, 12, 10), utc(2024, 6, 12, 11)),
        (utc(2024, 6, 12, 23, 59, 59), "day", utc(2024, 6, 12), utc(2024, 6, 13)),
        (utc(2024, 2, 10), "month", utc(2024, 2, 1), utc(2024, 3, 1)),
        (utc(2024, 12, 31, 23), "month", utc(2024, 12, 1), utc(2025, 1, 1)),
        (utc(2025, 1, 1), "month", utc(2025, 1, 1), utc(2025, 2, 1)),
    ],
)
def test_windows_are_utc_calendar_windows(
    now: float, window: str, start: float, end: float
) -> None:
    assert window_bounds(now, window) == (start, end)  # type: ignore[arg-type]


def test_a_rate_bursts_its_limit_by_default() -> None:
    assert Rule.rate("per_second", 20).burst == 20


def test_a_share_scales_limit_and_burst_but_never_to_zero() -> None:
    rule = Rule.rate("per_second", 10, burst=4).scaled(0.25)
    assert (rule.limit, rule.burst, rule.period) == (2, 1, 1.0)
    assert Rule.quota("per_day", 3, "day").scaled(0.1).limit == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: Rule.rate("", 1),
        lambda: Rule.rate("a:b", 1),
        lambda: Rule.rate("r", 0),
        lambda: Rule.rate("r", 1, period=0),
        lambda: Rule.rate("r", 1, burst=0),
        lambda: Rule.quota("q", 0, "day"),
    ],
)
def test_malformed_rules_are_refused(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_the_limits_section_decodes_with_bounds() -> None:
    config = load_config(None, {"POSTLINE__LIMITS__BACKEND": "redis"}).core.limits
    assert (config.backend, config.on_redis_failure, config.timeout) == ("redis", "open", 0.05)
    with pytest.raises(ConfigError, match=r"limits.*timeout"):
        load_config(None, {"POSTLINE__LIMITS__TIMEOUT": "30s"})
    with pytest.raises(ConfigError, match=r"limits\.fallback_share"):
        load_config(None, {"POSTLINE__LIMITS__FALLBACK_SHARE": "0"})
    with pytest.raises(ConfigError, match="limits"):
        load_config(None, {"POSTLINE__LIMITS__REDIS_URL": "http://x"})
