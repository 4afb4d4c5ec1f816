"""A tenant's limits as limiter rules, one key per tenant.

``TenantLimits`` (the record) says what a business may send; the limiter (``shared.limits``)
counts. This module is the one translation between them, so ingest's checks and
``postline tenant usage`` mean the same thing by "per_hour". Limits that are not counts
over time (recipients per message, message size, concurrent sessions) are checks of their own
in ingest.
"""

from __future__ import annotations

import math
from fractions import Fraction

from shared.limits import Rule
from shared.wire.records import TenantLimits

#: The limiter key of a tenant's message counters.
KEY_PREFIX = "tenant:"
#: The largest denominator a fractional rate is written with (0.001/s is 1 per 1000 s);
#: a slower rate counts as one per this many seconds.
_MAX_PERIOD = 86_400


def limit_key(tenant_id: str) -> str:
    """The limiter key of ``tenant_id``'s message counters."""
    return KEY_PREFIX + tenant_id


def message_rules(limits: TenantLimits) -> list[Rule]:
    """The rules one message consumes a unit of (none when the tenant has no limits)."""
    rules: list[Rule] = []
    if limits.per_second > 0:
        # A rate as whole units per period: 2.5/s is 5 per 2 s, 0.1/s is 1 per 10 s.
        # A rate under one per _MAX_PERIOD would round to 0 units, which no rule can count
        # (and ``tenant set`` accepts any rate >= 0): the slowest rate written stands in.
        rate = max(
            Fraction(limits.per_second).limit_denominator(_MAX_PERIOD), Fraction(1, _MAX_PERIOD)
        )
        burst = limits.burst or max(1, math.ceil(limits.per_second))
        rules.append(Rule.rate("per_second", rate.numerator, float(rate.denominator), burst))
    for name, limit, window in (
        ("per_hour", limits.per_hour, "hour"),
        ("per_day", limits.per_day, "day"),
        ("per_month", limits.per_month, "month"),
    ):
        if limit > 0:
            rules.append(Rule.quota(name, limit, window))  # type: ignore[arg-type]
    return rules
