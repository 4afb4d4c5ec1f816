"""A tenant's limits as limiter rules (``shared.tenant_limits``): what ingest counts a
message against, and ``postline tenant usage`` reports, for each ``TenantLimits``."""

from __future__ import annotations

import pytest

from shared.limits import Rule
from shared.tenant_limits import limit_key, message_rules
from shared.wire.records import TenantLimits


def test_each_tenant_has_its_own_limiter_key() -> None:
    # The key names the counters in Redis: a change would restart every tenant's counts.
    assert limit_key("acme") == "tenant:acme"
    assert limit_key("shop-2") == "tenant:shop-2"


def test_a_tenant_without_limits_is_counted_against_nothing() -> None:
    assert message_rules(TenantLimits()) == []
    # Limits that are not counts over time are ingest's own checks, not rules.
    assert (
        message_rules(TenantLimits(recipients_per_message=5, message_size=1000, sessions=2)) == []
    )


@pytest.mark.parametrize(
    ("per_second", "burst", "rule"),
    [
        # Whole rates: so many per second, a second's worth at once.
        (20.0, 0, Rule.rate("per_second", 20, 1.0, 20)),
        (1.0, 0, Rule.rate("per_second", 1, 1.0, 1)),
        # Fractional rates as whole units per period; the burst rounds a second's worth up.
        (2.5, 0, Rule.rate("per_second", 5, 2.0, 3)),
        (0.5, 0, Rule.rate("per_second", 1, 2.0, 1)),
        (0.1, 0, Rule.rate("per_second", 1, 10.0, 1)),
        (1 / 3, 0, Rule.rate("per_second", 1, 3.0, 1)),
        (0.001, 0, Rule.rate("per_second", 1, 1000.0, 1)),
        # One a day is the slowest rate written exactly.
        (1 / 86_400, 0, Rule.rate("per_second", 1, 86_400.0, 1)),
        # The tenant's own burst replaces the default.
        (2.5, 7, Rule.rate("per_second", 5, 2.0, 7)),
        (0.001, 2, Rule.rate("per_second", 1, 1000.0, 2)),
    ],
)
def test_a_rate_per_second_is_whole_units_per_period(
    per_second: float, burst: int, rule: Rule
) -> None:
    assert message_rules(TenantLimits(per_second=per_second, burst=burst)) == [rule]


def test_a_burst_without_a_rate_limits_nothing() -> None:
    assert message_rules(TenantLimits(burst=5)) == []


@pytest.mark.parametrize(
    ("limits", "rule"),
    [
        (TenantLimits(per_hour=100), Rule.quota("per_hour", 100, "hour")),
        (TenantLimits(per_day=1), Rule.quota("per_day", 1, "day")),
        (TenantLimits(per_month=50_000), Rule.quota("per_month", 50_000, "month")),
    ],
)
def test_each_quota_counts_over_its_own_calendar_window(limits: TenantLimits, rule: Rule) -> None:
    assert message_rules(limits) == [rule]


def test_every_limit_set_is_a_rule_rate_first() -> None:
    # The limiter names the first refusing rule in the reply; the rate comes first.
    limits = TenantLimits(per_second=10, burst=4, per_hour=1000, per_day=5000, per_month=90_000)
    assert message_rules(limits) == [
        Rule.rate("per_second", 10, 1.0, 4),
        Rule.quota("per_hour", 1000, "hour"),
        Rule.quota("per_day", 5000, "day"),
        Rule.quota("per_month", 90_000, "month"),
    ]
    assert [r.name for r in message_rules(TenantLimits(per_day=3, per_month=9))] == [
        "per_day",
        "per_month",
    ]


@pytest.mark.parametrize("per_second", [1e-6, 5e-6, 1e-9])
def test_a_rate_slower_than_one_a_day_counts_as_one_a_day(per_second: float) -> None:
    # `postline tenant set --limit per_second=0.000001` is accepted; rounding it to 0 units
    # made every message of the tenant fail with a ValueError instead of being counted.
    assert message_rules(TenantLimits(per_second=per_second)) == [
        Rule.rate("per_second", 1, 86_400.0, 1)
    ]
