"""What one event counts for: which tenant, sending domain and provider, and which counts.

Owns reading ``postline.events`` for reputation, once for every scope:

- the deliverer's ``delivered`` (sent, delivered), ``bounced`` (sent, and a hard bounce, a
  block or a soft bounce by the shared classifier on its reply, as the bouncer reads it),
  ``expired`` (sent, a soft bounce: RFC 3463 4.4.7) and ``deferred`` (an attempt deferred);
- the bouncer's asynchronous ``bounced`` (a DSN after the remote MX had accepted, whose
  ``delivered`` was already counted as sent: only the bounce is added, by the class the
  bouncer put in ``classification``), ``complained`` and ``unsubscribed``.

The bouncer does not publish events for the deliverer's failures (it answers them with
suppressions and DSNs only), so nothing is counted twice. Not counted: our own DSNs back to
senders (tagged ``dsn_for``: not the tenant's mail to its recipients), the bouncer's
``deferred`` (a delayed DSN: the remote still tries), what an operator bounced or deleted
from the queue (classification ``operator``), and every other kind.

The bouncer's events name no sender (a VERP address names the message and the recipient
only) and, at the global bounce domain, no tenant: :class:`Attribution` remembers the tenant
and sending domain of recent messages from the deliverer's events to fill them in.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.bounceclass.classify import classify
from shared.bounceclass.rules import BounceClass, RuleTable
from shared.queue.actions import OPERATOR
from shared.wire.records import DEFAULT_TENANT, Event, EventKind, ReputationCounts, SmtpReply

DELIVERER = "deliverer"
BOUNCER = "bouncer"
#: The tag the bouncer puts on a DSN it sends back to a sender.
DSN_TAG = "dsn_for"


@dataclass(frozen=True)
class Contribution:
    """What one event adds, and to whom."""

    tenant: str
    domain: str  # the sending domain ("" when unknown: the null sender, an old message)
    provider: str  # "" when the event names none (expiries)
    counts: ReputationCounts
    at: float


def sender_domain(sender: str) -> str:
    """The domain of an envelope sender, lower case ("" for the null sender)."""
    return sender.rpartition("@")[2].lower().rstrip(".") if "@" in sender else ""


class Attribution:
    """Tenant and sending domain of recent messages, by message id (first in, first out)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._seen: dict[str, tuple[str, str]] = {}
        self._names: dict[str, str] = {}  # one string object per tenant or domain

    def remember(self, message_id: str, tenant: str, domain: str) -> None:
        """Note whose message ``message_id`` is."""
        if self._size <= 0 or not message_id or message_id in self._seen:
            return
        if len(self._seen) >= self._size:
            del self._seen[next(iter(self._seen))]
        self._seen[message_id] = (self._name(tenant), self._name(domain))

    def lookup(self, message_id: str) -> tuple[str, str] | None:
        """The tenant and sending domain of ``message_id``, when remembered."""
        return self._seen.get(message_id)

    def _name(self, value: str) -> str:
        if len(self._names) > 100_000:  # bounded like the ids: a table, not a leak
            self._names.clear()
        return self._names.setdefault(value, value)


def bounce_kind(reply: SmtpReply | None, mx: str, table: RuleTable, expired: bool) -> str:
    """``hard``, ``block`` or ``soft`` for a deliverer's final failure."""
    reply = reply or SmtpReply(code=0)
    verdict = classify(reply.enhanced, reply.code, reply.text, mx, table).bounce_class
    if verdict is BounceClass.HARD:
        return "hard"
    if verdict is BounceClass.BLOCK and not expired:
        return "block"
    return "soft"  # RFC 3463 4.4.7 for an expiry; unknown permanent failures are not ours


def _failure(kind: str) -> ReputationCounts:
    if kind == "hard":
        return ReputationCounts(hard_bounces=1)
    if kind == "block":
        return ReputationCounts(blocks=1)
    return ReputationCounts(soft_bounces=1)


def _sent(kind: str) -> ReputationCounts:
    counts = _failure(kind)
    return ReputationCounts(
        sent=1,
        hard_bounces=counts.hard_bounces,
        blocks=counts.blocks,
        soft_bounces=counts.soft_bounces,
    )


def deliverer_counts(event: Event, table: RuleTable) -> tuple[ReputationCounts, str] | None:
    """The counts of a deliverer event and the outcome in words (delivered, hard, block,
    soft, deferred); ``None`` for what is not counted."""
    if event.kind is EventKind.DELIVERED:
        return ReputationCounts(sent=1, delivered=1), "delivered"
    if event.kind is EventKind.DEFERRED:
        return ReputationCounts(deferred=1), "deferred"
    if event.kind in (EventKind.BOUNCED, EventKind.EXPIRED):
        if event.classification == OPERATOR:
            return None  # bounced from the queue by an operator: not the recipient's doing
        kind = bounce_kind(event.reply, event.mx, table, event.kind is EventKind.EXPIRED)
        return _sent(kind), kind
    return None


def bouncer_counts(event: Event) -> ReputationCounts | None:
    """The counts of a bouncer event; ``None`` for what is not counted."""
    if event.kind is EventKind.COMPLAINED:
        return ReputationCounts(complaints=1)
    if event.kind is EventKind.UNSUBSCRIBED:
        return ReputationCounts(unsubscribes=1)
    if event.kind is EventKind.BOUNCED:
        if event.classification == BounceClass.HARD:
            return _failure("hard")
        if event.classification == BounceClass.BLOCK:
            return _failure("block")
        return _failure("soft")
    return None


def contribution(
    event: Event, table: RuleTable, attribution: Attribution
) -> tuple[Contribution, str] | None:
    """What ``event`` counts for, with its outcome in words; ``None`` when nothing."""
    if event.tags.get(DSN_TAG):
        return None
    if event.stage == DELIVERER:
        found = deliverer_counts(event, table)
        if found is None:
            return None
        tenant, domain = event.tenant or DEFAULT_TENANT, sender_domain(event.sender)
        attribution.remember(event.message_id, tenant, domain)
        counts, outcome = found
        return Contribution(tenant, domain, event.provider, counts, event.at), outcome
    if event.stage == BOUNCER:
        feedback = bouncer_counts(event)
        if feedback is None:
            return None
        tenant, domain = event.tenant, sender_domain(event.sender)
        known = attribution.lookup(event.message_id)
        if known is not None and (not tenant or tenant == known[0]):
            tenant, domain = known[0], domain or known[1]
        if not tenant:
            return None  # neither the event nor a remembered message names the tenant
        return Contribution(tenant, domain, event.provider, feedback, event.at), event.kind.value
    return None
