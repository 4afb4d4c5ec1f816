"""What the bouncer publishes for a report or a failure: Events, Suppressions, DSNs.

Owns turning a parsed report (with the VERP token that proves which message and recipient
it is about) or a deliverer's ``bounced``/``expired`` event into output records, and counting
them. A ``bounced`` event an operator caused (``postline queue bounce``: classification
``operator``) gets its DSN and nothing else: it says nothing about the recipient. It does
not parse, speak SMTP or HTTP, or publish: callers publish what it returns.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from services.bouncer.classify import classify_recipient
from services.bouncer.dsngen import DsnGenerator, action
from services.bouncer.metrics import BouncerMetrics
from services.bouncer.report import RecipientStatus, Report, ReportKind
from services.bouncer.suppress import SuppressionPolicy
from shared.bounceclass.classify import Classification, classify
from shared.bounceclass.reasons import Reason
from shared.bounceclass.rules import BounceClass, RuleTable
from shared.providers import provider_for_host
from shared.queue.actions import OPERATOR
from shared.wire.records import DEFAULT_TENANT, Event, EventKind, SmtpReply, Suppression
from shared.wire.tokens import UnsubscribeToken, VerpToken
from shared.wire.topics import EVENTS, SUPPRESSIONS, OutRecord

STAGE = "bouncer"
_KIND_EVENT = {
    ReportKind.COMPLAINT: EventKind.COMPLAINED,
    ReportKind.AUTO_REPLY: EventKind.AUTO_REPLIED,
}


@dataclass
class Outcomes:
    """Builds the records for reports and failures (one per process, no global state)."""

    table: RuleTable
    policy: SuppressionPolicy
    metrics: BouncerMetrics
    dsn: DsnGenerator

    def for_report(
        self, report: Report, token: VerpToken, at: float, tenant: str = ""
    ) -> list[OutRecord]:
        """Records for a report that arrived at a verified VERP address; ``tenant`` is the
        one its return-path host names ("": unknown)."""
        self.metrics.reports.labels(str(report.kind)).inc()
        if report.kind is ReportKind.OTHER:
            return []  # a human reply or spam to the return path: counted, nothing to do
        status = _matching(report, token.recipient)
        if status is None:
            return []  # e.g. a "relayed"/"delivered" DSN: nothing failed
        verdict = classify_recipient(report, status, self.table)
        provider = provider_for_host(status.remote_mta or report.reporting_mta or "")
        kind = _KIND_EVENT.get(report.kind) or (
            EventKind.BOUNCED if verdict.permanent else EventKind.DEFERRED
        )
        event = Event(
            kind=kind,
            message_id=token.message_id,
            at=at,
            recipient=token.recipient,
            domain=token.recipient.rpartition("@")[2].lower(),
            reply=_reply(status, verdict.status),
            mx=status.remote_mta,
            provider=provider,
            classification=str(verdict.bounce_class),
            check=verdict.rule,
            detail=_detail(report, status, token.recipient),
            stage=STAGE,
            tenant=tenant,
            reason=str(verdict.reason),
            original_recipient=status.original_recipient,
        )
        self._count(verdict, provider, kind)
        out = [EVENTS.out(event)]
        if kind in (EventKind.BOUNCED, EventKind.COMPLAINED):
            # The VERP token names message and recipient only (a new field would break return
            # paths already sent); the tenant comes from the address's host instead. A report
            # at a tenant's return-path host (bounces.D or D's bounce_domain, used only by
            # that tenant's verified domains) is that tenant's: its complaint suppresses the
            # tenant's mail. At our global bounce domain the tenant is unknown ("") and a
            # complaint suppresses globally (the safe mistake). Bounces are global either way.
            proof = (report.parser, report.report_id, token.message_id)
            out += self._suppress(token.recipient, verdict, at, event.detail, tenant, proof=proof)
        return out

    def for_unsubscribe(
        self, token: UnsubscribeToken, at: float, via: str, tenant: str = ""
    ) -> list[OutRecord]:
        """Records for a verified unsubscribe (one-click POST or mailto). ``tenant`` (a mailto
        at a tenant's return-path host) goes on the event only: the suppression stays keyed
        by the token's sender domain, so a one-click and a mailto unsubscribe are one entry."""
        self.metrics.unsubscribes.labels(via).inc()
        record = self.policy.unsubscribe(token, at, via)
        self.metrics.suppressions.labels(str(record.reason)).inc()
        event = Event(
            kind=EventKind.UNSUBSCRIBED,
            message_id=token.message_id,
            at=at,
            recipient=token.recipient,
            domain=token.recipient.rpartition("@")[2].lower(),
            detail=f"via {via}; scope {token.scope or 'all senders'}",
            stage=STAGE,
            tenant=tenant,
        )
        return [EVENTS.out(event), SUPPRESSIONS.out(record)]

    def for_failure(self, event: Event) -> list[OutRecord]:
        """Records for a deliverer's ``bounced`` or ``expired`` event: suppression, DSN."""
        if event.kind not in (EventKind.BOUNCED, EventKind.EXPIRED) or event.stage == STAGE:
            return []  # our own events (async DSNs) were acted on when they arrived
        self.metrics.reports.labels(str(event.kind)).inc()
        if event.classification == OPERATOR:
            # Bounced from the queue by an operator (postline queue bounce): the sender
            # hears of it, but nothing is known about the recipient to suppress.
            return self._dsn(event)
        reply = event.reply or SmtpReply(code=0)
        verdict = classify(
            reply.enhanced, reply.code, reply.text, event.mx, self.table, permanent=True
        )
        if event.kind is EventKind.EXPIRED and verdict.bounce_class is not BounceClass.HARD:
            # RFC 3463 4.4.7: what the last attempt said stays the reason when it names one
            # ("mailboxfull" for days), else the expiry is the reason.
            reason = verdict.reason if verdict.reason is not Reason.UNDEFINED else Reason.EXPIRED
            verdict = dataclasses.replace(verdict, bounce_class=BounceClass.SOFT, reason=reason)
        provider = event.provider or provider_for_host(event.mx or "")
        self._count(verdict, provider, event.kind)
        # The deliverer's event names the tenant that sent ("" from before tenants: default).
        tenant = event.tenant or DEFAULT_TENANT
        # The proof of a synchronous bounce is the remote server's reply (in ``detail``).
        proof = ("smtp", "", event.message_id)
        out = self._suppress(event.recipient, verdict, event.at, str(reply), tenant, proof=proof)
        return out + self._dsn(event)

    def for_notice(self, event: Event) -> list[OutRecord]:
        """The success or delay notice a deliverer's ``delivered`` or ``deferred`` event
        calls for, when the sender asked for it (RFC 3461 NOTIFY; ``dsngen.py``)."""
        if event.kind not in (EventKind.DELIVERED, EventKind.DEFERRED) or event.stage == STAGE:
            return []
        return self._dsn(event)

    def _dsn(self, event: Event) -> list[OutRecord]:
        """The DSN to the sender, when one is due."""
        dsn = self.dsn.for_event(event)
        if dsn is None:
            return []
        label = "expired" if event.kind is EventKind.EXPIRED else action(event)
        self.metrics.dsns_sent.labels(label).inc()
        return [dsn]

    def _suppress(
        self,
        address: str,
        verdict: Classification,
        at: float,
        detail: str,
        tenant: str,
        *,
        proof: tuple[str, str, str],
    ) -> list[OutRecord]:
        """The suppression a verdict calls for; ``proof`` is (method, the report's id, the
        message id), kept on the entry."""
        method, report_id, message_id = proof
        record: Suppression | None = self.policy.decide(
            address,
            verdict.bounce_class,
            at,
            detail,
            tenant=tenant,
            bounce_reason=str(verdict.reason),
            method=method,
            proof=report_id,
            message_id=message_id,
        )
        if record is None:
            return []
        self.metrics.suppressions.labels(str(record.reason)).inc()
        return [SUPPRESSIONS.out(record)]

    def _count(self, verdict: Classification, provider: str, kind: EventKind) -> None:
        if kind is EventKind.COMPLAINED:
            self.metrics.complaints.labels(provider).inc()
        elif kind in (EventKind.BOUNCED, EventKind.EXPIRED, EventKind.DEFERRED):
            self.metrics.bounces.labels(
                str(verdict.bounce_class), provider, str(verdict.reason)
            ).inc()


def _matching(report: Report, recipient: str) -> RecipientStatus | None:
    # VERP names the recipient; a report about several (rare: one VERP address per
    # recipient) is matched by address, else its first failure is about ours.
    wanted = recipient.lower()
    candidates = (
        report.failures if report.kind in (ReportKind.DSN, ReportKind.BOUNCE) else report.recipients
    )
    for status in candidates:
        if wanted in (status.recipient.lower(), status.original_recipient.lower()):
            return status
    if candidates:
        return candidates[0]
    if report.kind in (ReportKind.COMPLAINT, ReportKind.AUTO_REPLY):
        return RecipientStatus(recipient=recipient)  # ARF with a redacted recipient (RFC 6590)
    return None


def _detail(report: Report, status: RecipientStatus, recipient: str) -> str:
    # The token's recipient is the one acted on (VERP proves it); when the report's own
    # recipient (the Final-Recipient the remote MTA tried: a forward, an alias) differs,
    # it is kept here so that neither address is lost.
    tried = status.recipient
    named = f" (tried {tried})" if tried and tried.lower() != recipient.lower() else ""
    return f"{report.parser}{named}: {status.diagnostic}"[:500]


def _reply(status: RecipientStatus, derived: str) -> SmtpReply | None:
    # The status is always present: the report's, else the one derived from the reply code
    # and the reason (``shared.bounceclass.reasons``), as sisimai does.
    if not (status.smtp_code or status.status or status.diagnostic):
        return None
    enhanced = status.status or derived
    return SmtpReply(code=status.smtp_code, enhanced=enhanced, text=status.diagnostic[:500])
