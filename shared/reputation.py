"""Reading ``postline.reputation``: its keys, a window's totals and rates, what a pause says.

Shared by the reputation stage (which writes the records), the CLI (``postline reputation``,
``postline pool status``) and whoever else reads the records (ingest, the deliverer's
warm-up allowance). A record's buckets hold only the hours inside its window as of
``updated_at`` (the stage drops older ones whenever it writes), so a reader sums them all.

The rates, as the large providers and SES define them:

- bounce rate = hard bounces / sent (final outcomes: delivered, bounced, expired),
- complaint rate = complaints / delivered (what reached a mailbox could be reported),
- block rate = policy blocks / sent.

Owns the arithmetic and the words; it does not decide levels (the stage's thresholds do) nor
read the bus.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.wire.records import ReputationBucket, ReputationCounts, WarmupState

HOUR = 3600
DAY = 86400

#: ``Reputation.scope`` values.
SCOPE_TENANT = "tenant"
SCOPE_DOMAIN = "domain"
SCOPE_PROVIDER = "provider"
SCOPE_ADDRESS = "address"
SCOPE_CREDENTIAL = "credential"  # compromised-account detection (key ``credential|<login>``)

#: ``Reputation.level`` values.
LEVEL_OK = "ok"
LEVEL_WARNING = "warning"
LEVEL_PAUSED = "paused"

#: ``WarmupState.health`` of an address past the last step of its schedule.
WARM = "warm"

#: Who the reputation stage's changes are by, in tenant records and the audit trail.
BY = "reputation"


def tenant_key(tenant: str) -> str:
    """The key of a tenant's record: ``tenant|<id>``."""
    return f"{SCOPE_TENANT}|{tenant}"


def domain_key(tenant: str, domain: str) -> str:
    """The key of a tenant's sending domain's record: ``domain|<tenant>|<domain>``."""
    return f"{SCOPE_DOMAIN}|{tenant}|{domain}"


def credential_key(login: str) -> str:
    """The key of a credential's record: ``credential|<login>``."""
    return f"{SCOPE_CREDENTIAL}|{login}"


def provider_key(tenant: str, provider: str) -> str:
    """The key of a tenant's record with one provider: ``provider|<tenant>|<provider>``."""
    return f"{SCOPE_PROVIDER}|{tenant}|{provider}"


def plus(a: ReputationCounts, b: ReputationCounts) -> ReputationCounts:
    """The sum of two counts."""
    return ReputationCounts(
        sent=a.sent + b.sent,
        delivered=a.delivered + b.delivered,
        hard_bounces=a.hard_bounces + b.hard_bounces,
        soft_bounces=a.soft_bounces + b.soft_bounces,
        blocks=a.blocks + b.blocks,
        complaints=a.complaints + b.complaints,
        unsubscribes=a.unsubscribes + b.unsubscribes,
        deferred=a.deferred + b.deferred,
    )


def total(buckets: Iterable[ReputationBucket]) -> ReputationCounts:
    """The counts of ``buckets`` together."""
    counts = ReputationCounts()
    for bucket in buckets:
        counts = plus(counts, bucket.counts)
    return counts


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole > 0 else 0.0


@dataclass(frozen=True)
class Rates:
    """A window's rates (fractions: 0.05 is 5%)."""

    bounce: float
    complaint: float
    block: float

    @classmethod
    def of(cls, counts: ReputationCounts) -> Rates:
        """The rates of ``counts`` (0 while a denominator is 0)."""
        return cls(
            bounce=_ratio(counts.hard_bounces, counts.sent),
            complaint=_ratio(counts.complaints, counts.delivered),
            block=_ratio(counts.blocks, counts.sent),
        )


def figures(counts: ReputationCounts, window_hours: int) -> dict[str, float]:
    """What a decision's event carries: the counts, the rates and the window."""
    rates = Rates.of(counts)
    return {
        "sent": float(counts.sent),
        "delivered": float(counts.delivered),
        "hard_bounces": float(counts.hard_bounces),
        "soft_bounces": float(counts.soft_bounces),
        "blocks": float(counts.blocks),
        "complaints": float(counts.complaints),
        "unsubscribes": float(counts.unsubscribes),
        "deferred": float(counts.deferred),
        "bounce_rate": rates.bounce,
        "complaint_rate": rates.complaint,
        "block_rate": rates.block,
        "window_hours": float(window_hours),
    }


def percent(rate: float) -> str:
    """``0.142`` -> ``"14.2%"``; small rates keep two decimals (``"0.35%"``)."""
    value = rate * 100
    return f"{value:.1f}%" if value >= 1 or value == 0 else f"{value:.2f}%"


def describe(rate_name: str, counts: ReputationCounts, window_hours: int) -> str:
    """One rate in words, with the counts behind it, as a refused client and an operator
    read it: ``hard bounce rate 14.2% over 24h (71 of 500)``."""
    rates = Rates.of(counts)
    part, whole, value, label = {
        "bounce": (counts.hard_bounces, counts.sent, rates.bounce, "hard bounce rate"),
        "complaint": (counts.complaints, counts.delivered, rates.complaint, "complaint rate"),
        "block": (counts.blocks, counts.sent, rates.block, "block rate"),
    }[rate_name]
    return f"{label} {percent(value)} over {window_hours}h ({part} of {whole})"


def day_of(at: float) -> int:
    """The UTC day number (Unix time // 86400) of a time."""
    return int(at // DAY)


def sent_today(state: WarmupState, today: int) -> int:
    """A warming address's attempts on ``today`` (0 while its state is on an earlier day:
    the stage rolls it over at the day's first attempt)."""
    return state.sent if state.day == today else 0


def stuck(state: WarmupState, today: int, stuck_after_days: int) -> bool:
    """Whether a warming address has not advanced for ``stuck_after_days`` days."""
    return state.health != WARM and today - day_of(state.changed_at) >= stuck_after_days
