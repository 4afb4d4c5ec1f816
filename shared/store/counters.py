"""What an event adds to the rollups: pure, no database.

Three rollups, each a sum over an hour (``rows.hour_of``) keyed as the reports read them:

- ``rollup_hourly`` (tenant, sending domain, campaign, provider): :data:`HOURLY_COUNTERS`;
- ``rollup_reasons`` (tenant, campaign, kind, classification, reason): bounces, deferrals,
  expiries and complaints by why;
- ``rollup_domains`` (tenant, campaign, recipient domain): delivered, deferred, bounced.

A bounce is hard or soft by the bouncer's class when it gives one (``hard``, ``soft``),
else by its reason's class in the shared reason table (``shared.bounceclass.reasons``), as
the deliverer's synchronous bounces carry the outcome (``bounced``) as classification. Opens
and clicks count apart when a machine made them (privacy proxies, link scanners). Kinds not
named here are stored but counted nowhere.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from shared.bounceclass.reasons import REASONS, Reason
from shared.bounceclass.rules import BounceClass
from shared.store.rows import Origin, day_of, domain_of, hour_of
from shared.wire.records import Event, EventKind

HOURLY_COUNTERS = (
    "accepted",
    "delivered",
    "deferred",
    "bounced",
    "bounced_hard",
    "bounced_soft",
    "expired",
    "complained",
    "unsubscribed",
    "opened",
    "opened_machine",
    "clicked",
    "clicked_machine",
    "suppressed",
    "rejected",
)
DOMAIN_COUNTERS = ("delivered", "deferred", "bounced")

#: Kinds whose counter has the kind's own name.
_SAME_NAME = frozenset(
    {
        EventKind.ACCEPTED,
        EventKind.DELIVERED,
        EventKind.DEFERRED,
        EventKind.BOUNCED,
        EventKind.EXPIRED,
        EventKind.COMPLAINED,
        EventKind.UNSUBSCRIBED,
        EventKind.SUPPRESSED,
        EventKind.REJECTED,
    }
)
#: Kinds counted by why in ``rollup_reasons``.
_BY_REASON = frozenset(
    {EventKind.BOUNCED, EventKind.DEFERRED, EventKind.EXPIRED, EventKind.COMPLAINED}
)
_BY_DOMAIN = frozenset({EventKind.DELIVERED, EventKind.DEFERRED, EventKind.BOUNCED})

#: (hour, day, tenant, sender_domain, campaign, provider)
HourlyKey = tuple[int, int, str, str, str, str]
#: (hour, day, tenant, campaign, kind, classification, reason)
ReasonKey = tuple[int, int, str, str, str, str, str]
#: (hour, day, tenant, campaign, recipient_domain)
DomainKey = tuple[int, int, str, str, str]


def bounce_class(event: Event) -> str:
    """``hard``, ``soft`` or "" (a block, a bounce of unknown kind) for a ``bounced`` event."""
    if event.classification in (BounceClass.HARD, BounceClass.SOFT):
        return event.classification
    try:
        info = REASONS[Reason(event.reason)]
    except ValueError:
        return ""
    if info.bounce_class in (BounceClass.HARD, BounceClass.SOFT):
        return info.bounce_class.value
    return ""


def hourly_counters(event: Event) -> tuple[str, ...]:
    """The ``rollup_hourly`` counters ``event`` adds one to (none for most kinds)."""
    kind = event.kind
    if kind in (EventKind.OPENED, EventKind.CLICKED):
        return (f"{kind.value}_machine" if event.machine else kind.value,)
    if kind not in _SAME_NAME:
        return ()
    if kind is EventKind.BOUNCED and (cls := bounce_class(event)):
        return ("bounced", f"bounced_{cls}")
    return (kind.value,)


@dataclass
class Rollups:
    """The rollups' increments of one batch, summed per key (each key written once)."""

    hourly: dict[HourlyKey, Counter[str]] = field(default_factory=dict)
    reasons: Counter[ReasonKey] = field(default_factory=Counter)
    domains: dict[DomainKey, Counter[str]] = field(default_factory=dict)

    def add(self, event: Event, origin: Origin) -> None:
        """Count ``event`` (newly stored) for ``origin``, its attributed message."""
        names = hourly_counters(event)
        if not names:
            return
        hour, day = hour_of(event.at), day_of(event.at)
        key = (hour, day, origin.tenant, origin.sender_domain, origin.campaign, event.provider)
        self.hourly.setdefault(key, Counter()).update(names)
        kind = event.kind
        if kind in _BY_REASON:
            reason_key = (
                hour,
                day,
                origin.tenant,
                origin.campaign,
                kind.value,
                event.classification,
                event.reason,
            )
            self.reasons[reason_key] += 1
        if kind in _BY_DOMAIN:
            rdomain = event.domain.lower() or domain_of(event.recipient)
            dkey = (hour, day, origin.tenant, origin.campaign, rdomain)
            self.domains.setdefault(dkey, Counter())[kind.value] += 1

    def hourly_rows(self) -> list[tuple[object, ...]]:
        """``rollup_hourly`` rows: the key, then every counter (sorted: upserts from two
        writers take their row locks in the same order)."""
        return [
            (*key, *(counts[name] for name in HOURLY_COUNTERS))
            for key, counts in sorted(self.hourly.items())
        ]

    def reason_rows(self) -> list[tuple[object, ...]]:
        """``rollup_reasons`` rows: the key, then the count."""
        return [(*key, count) for key, count in sorted(self.reasons.items())]

    def domain_rows(self) -> list[tuple[object, ...]]:
        """``rollup_domains`` rows: the key, then every counter."""
        return [
            (*key, *(counts[name] for name in DOMAIN_COUNTERS))
            for key, counts in sorted(self.domains.items())
        ]
