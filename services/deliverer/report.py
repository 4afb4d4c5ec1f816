"""Turn how a job ended into records: events, a retry Delivery, THROTTLED events.

Owns: :func:`records_for`, pure apart from the schedule's jitter: per recipient a DELIVERED,
BOUNCED or DEFERRED event (with the reply, MX host, provider, TLS version and attempt), one
retry Delivery for the deferred recipients (attempt + 1, ``not_before`` from the schedule) or
EXPIRED events past the maximum age; shed jobs go to a tier unchanged (no attempt was made).
Every event of an attempt names the local address it was sent from (``source``).
BOUNCED and EXPIRED events carry the original header block and the bulk flag, which the
bouncer's DSN to the sender needs (it never sees the Delivery); every event carries the
sender's DSN request (RFC 3461 NOTIFY, ORCPT, RET, ENVID), and a DELIVERED or DEFERRED one
the header block too when it calls for a success or delay notice. Also updates the attempt
metrics and, with ``mail_log``, writes the mail log's lines of the attempt, hold or expiry
(``maillog.py``): every outcome passes here, except expiries found by the retry loop
(``retry.py`` writes those). Does not publish (``engine.py`` does, in a transaction).

The deferred queue's index (``shared.queue.index``) is kept here too: a Delivery put in a
tier (deferred or held) gets its ``postline.queue`` entry beside the tier record, and one
that ends (every recipient delivered or bounced, or expired) the entry's tombstone, in the
same transaction; ``copy`` names the record the attempt read, where the message data is.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from services.deliverer import maillog
from services.deliverer.lanes import lane_name
from services.deliverer.metrics import DelivererMetrics, reply_class, source_label
from services.deliverer.outcome import TLS_UNAVAILABLE, Outcome
from services.deliverer.queue import (
    SHED_PAUSED,
    SHED_SUSPENDED,
    SHED_THROTTLED,
    SHED_WARMUP,
    SHED_WINDOW_FULL,
    JobResult,
)
from services.deliverer.retry import RetrySchedule, dsn_fields, expired_events, failure_fields
from services.deliverer.throttle import ThrottleChange
from services.deliverer.transport.policy import TlsOutcome
from shared import dsnparams
from shared.queue import index
from shared.wire.records import Delivery, Event, EventKind, SmtpReply
from shared.wire.topics import EVENTS, OutRecord

_KIND = {
    Outcome.DELIVERED: EventKind.DELIVERED,
    Outcome.BOUNCED: EventKind.BOUNCED,
    Outcome.DEFERRED: EventKind.DEFERRED,
}


def records_for(
    delivery: Delivery,
    result: JobResult,
    at: float,
    schedule: RetrySchedule,
    metrics: DelivererMetrics,
    *,
    window_full_delay: float = 5.0,
    mail_log: bool = False,
    copy: index.Copy | None = None,
) -> list[OutRecord]:
    """Every record to publish for an attempt at ``delivery`` (see the module docstring)."""
    records = [
        throttle_event(delivery.domain, result.provider, change, at) for change in result.throttle
    ]
    records += [
        tls_session_event(delivery.domain, result.provider, outcome, at, metrics)
        for outcome in result.tls_sessions
    ]
    if result.shed:
        entry = _entry(result, at, copy, result.shed, result.cause)
        shed, next_attempt = _shed(
            delivery,
            result,
            at,
            schedule,
            metrics,
            entry=entry,
            window_full_delay=window_full_delay,
        )
        if mail_log:
            maillog.write(
                maillog.held_lines(delivery, result, at, next_attempt)
                if next_attempt
                else maillog.expired_lines(delivery, at)
            )
        return records + shed
    attempt = delivery.attempt + 1
    deferred: list[str] = []
    last_reply: SmtpReply | None = None
    headers = failure_fields(delivery)["headers"]
    for rcpt, classified in result.results.items():
        # Only final failures carry the header block (for the sender's DSN), and the
        # delivered or deferred events of a success or delay notice the sender asked for
        # (RFC 3461); the others stay small. Every event says whether the mail was bulk (reports
        # split deliverability by transactional and bulk).
        final = classified.outcome is Outcome.BOUNCED
        notice = final or _notice(delivery, rcpt, result, attempt)  # a DSN will be made of it
        reason = classified.reason  # None: delivered
        dsn = dsn_fields(delivery, rcpt)
        records.append(
            EVENTS.out(
                Event(
                    kind=_KIND[classified.outcome],
                    message_id=delivery.message_id,
                    at=at,
                    recipient=rcpt,
                    domain=delivery.domain,
                    delivery_id=delivery.delivery_id,
                    sender=delivery.sender,
                    reply=classified.reply,
                    mx=result.mx,
                    provider=result.provider,
                    tls=result.tls,
                    tls_security=result.tls_security,
                    tls_verified=result.tls_verified,
                    tls_cipher=result.cipher,
                    attempt=attempt,
                    classification=classified.outcome.value,
                    tags=delivery.tags,
                    stage="deliverer",
                    tenant=delivery.tenant,
                    headers=headers if notice else b"",
                    # RFC 8689 4.3: the DSN made from it goes with REQUIRETLS too.
                    requiretls=notice and delivery.requiretls,
                    bulk=delivery.bulk,
                    source=result.source,
                    reason=str(reason or ""),
                    dsn_passed=result.dsn and classified.outcome is Outcome.DELIVERED,
                    **dsn,
                )
            )
        )
        metrics.attempts.labels(result.provider, classified.outcome.value).inc()
        if reason is not None:
            metrics.failures.labels(result.provider, classified.outcome.value, reason).inc()
        metrics.source_attempts.labels(
            source_label(result.source), result.provider, classified.outcome.value
        ).inc()
        metrics.tenants.count(delivery.tenant, classified.outcome.value)
        if classified.outcome is Outcome.DELIVERED and result.tls_security:
            metrics.delivered_by_tls.labels(
                result.tls_security, "verified" if result.tls_verified else "unverified"
            ).inc()
        if classified.reply == TLS_UNAVAILABLE:
            metrics.tls_required_failures.labels(result.provider).inc()
        metrics.replies.labels(result.provider, reply_class(classified.reply.code)).inc()
        if classified.outcome is Outcome.DEFERRED:
            deferred.append(rcpt)
            last_reply = classified.reply
        elif classified.outcome is Outcome.DELIVERED and delivery.submitted_at > 0:
            metrics.delivery_delay.labels(result.provider, lane_name(delivery)).observe(
                max(0.0, at - delivery.submitted_at)
            )
    metrics.attempt_seconds.labels(result.provider).observe(result.seconds)
    next_attempt = 0.0
    if deferred:
        retry = msgspec.structs.replace(
            delivery,
            rcpt_to=tuple(deferred),
            attempt=attempt,
            first_attempt_at=delivery.first_attempt_at or at,
            last_attempt_at=at,
            last_reply=last_reply,
            expires_at=schedule.expires_at(delivery),
        )
        entry = _entry(result, at, copy, index.DEFERRED, result.cause)
        retried, next_attempt = _retry(
            retry, at, schedule.delay(attempt), schedule, metrics, entry=entry
        )
        records += retried
    else:
        records += index.ended(delivery)  # every recipient delivered or bounced
    if mail_log:
        maillog.write(maillog.attempt_lines(delivery, result, at, next_attempt))
    return records


def _notice(delivery: Delivery, rcpt: str, result: JobResult, attempt: int) -> bool:
    """Whether the bouncer owes the sender a success or delay notice for ``rcpt`` (RFC 3461),
    for which the event carries the header block: SUCCESS asked and the MX did not take the
    duty over (no DSN offered: a "relayed" notice), or DELAY asked and this is the first
    deferral (one notice, not one per retry)."""
    outcome = result.results[rcpt].outcome
    dsn = delivery.dsn.get(rcpt)
    notify = dsn.notify if dsn is not None else ()
    if outcome is Outcome.DELIVERED:
        return not result.dsn and dsnparams.notifies(notify, dsnparams.SUCCESS)
    if outcome is Outcome.DEFERRED:
        return attempt == 1 and dsnparams.notifies(notify, dsnparams.DELAY)
    return False


def _shed(
    delivery: Delivery,
    result: JobResult,
    at: float,
    schedule: RetrySchedule,
    metrics: DelivererMetrics,
    *,
    entry: Entry,
    window_full_delay: float,
) -> tuple[list[OutRecord], float]:
    """The retry record (and when it is due) or the EXPIRED events (and 0) of a shed job."""
    metrics.shaped.labels(result.shed).inc()
    if result.shed == SHED_THROTTLED:
        delay = max(result.not_before - at, 0.0)  # the end of the destination's suspension
    elif result.shed in (SHED_WARMUP, SHED_PAUSED, SHED_SUSPENDED):
        # The next UTC day's allowance, or the hold interval: in passes no longer than the
        # longest tier (a record due later would hold its tier partition; it comes back,
        # is checked again and waits again).
        delay = min(max(result.not_before - at, 0.0), schedule.last_tier_seconds)
    elif result.shed == SHED_WINDOW_FULL:
        delay = window_full_delay  # busy, not failing: back soon, behind the backlog
    else:
        delay = 0.0  # stopping: not a verdict on the destination, back at once
    return _retry(delivery, at, delay, schedule, metrics, entry=entry)


def _retry(
    delivery: Delivery,
    at: float,
    delay: float,
    schedule: RetrySchedule,
    metrics: DelivererMetrics,
    *,
    entry: Entry,
) -> tuple[list[OutRecord], float]:
    """The retry record with its index entry and when it is due, or the EXPIRED events
    (with the entry's tombstone) and 0."""
    expires = schedule.expires_at(delivery)
    if at >= expires:
        metrics.expired.inc(len(delivery.rcpt_to))
        metrics.tenants.count(delivery.tenant, "expired", len(delivery.rcpt_to))
        return expired_events(delivery, at, delivery.last_reply) + index.ended(delivery), 0.0
    # Never wait past the expiry: the retry loop expires the record when it is due.
    wait = min(delay, max(0.0, expires - at))
    deferral = schedule.defer(delivery, at, wait)
    metrics.retries.labels(deferral.tier).inc()
    return [deferral.record, entry(deferral.delivery, deferral.topic)], at + wait


#: Builds the index entry of a Delivery written to a tier (named).
Entry = Callable[[Delivery, str], OutRecord]


def _entry(
    result: JobResult, at: float, copy: index.Copy | None, reason: str, detail: str
) -> Entry:
    def build(waiting: Delivery, tier: str) -> OutRecord:
        return index.entry(
            waiting,
            tier=tier,
            at=at,
            reason=reason,
            detail=detail,
            provider=result.provider,
            source=result.source,
            copy=copy,
        )

    return build


def throttle_event(domain: str, provider: str, change: ThrottleChange, at: float) -> OutRecord:
    """The THROTTLED event of one throttle step (keyed by domain)."""
    return EVENTS.out(
        Event(
            kind=EventKind.THROTTLED,
            at=at,
            domain=domain,
            provider=provider,
            reply=change.reply,
            classification=change.action,
            detail=change.describe(),
            stage="deliverer",
        )
    )


def tls_session_event(
    domain: str, provider: str, outcome: TlsOutcome, at: float, metrics: DelivererMetrics
) -> OutRecord:
    """The ``tls_session`` event of one connection attempt (keyed by domain), counted in
    the TLS metrics."""
    failure = outcome.failure.value if outcome.failure is not None else ""
    metrics.tls_sessions.labels(
        outcome.security.value, "verified" if outcome.verified else "unverified", failure or "ok"
    ).inc()
    return EVENTS.out(
        Event(
            kind=EventKind.TLS_SESSION,
            at=at,
            domain=domain,
            mx=outcome.mx,
            mx_address=outcome.mx_address,
            source=outcome.source,
            provider=provider,
            tls=outcome.version,
            tls_cipher=outcome.cipher,
            tls_security=outcome.security.value,
            tls_verified=outcome.verified,
            tls_failure=failure,
            tls_policy_domain=outcome.report.domain or domain,
            tls_policy_type=outcome.report.type,
            tls_policy=outcome.report.strings,
            tls_mx_patterns=outcome.report.mx_patterns,
            detail=outcome.detail,
            stage="deliverer",
        )
    )
