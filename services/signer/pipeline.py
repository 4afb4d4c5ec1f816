"""The signer's batch handler: Submissions in, signed Deliveries and events out.

For each Submission, the events ingest recorded with it (``Submission.events``: ``accepted``,
``suppressed``, ``scanned``) go out first, in the same transaction as everything below, so
they appear exactly once and ahead of the signer's own; then, in order:

1. recipients on the suppression list are dropped with a ``suppressed`` event: a global or
   tenant suppression always, one scoped to the From domain (an unsubscribe) only from bulk
   mail. Ingest refuses global and tenant suppressions at RCPT already; scoped ones are
   decided here, where the tags and headers that make a message bulk are known;
2. the signing domain is the From domain when it has a usable key (aligned for DMARC,
   RFC 7489 3.1.1), else the submitting user's fallback, else the global fallback; with
   none the message goes unsigned if ``allow_unsigned``, otherwise it fails with a
   ``failed`` event (never silently dropped: the event reaches the sender's reporting);
3. a message is bulk when its tenant's settings say so, or by an ``X-Postline-Bulk`` tag, a
   ``bulk_rules`` rule, or its own ``Precedence: bulk`` or ``List-Unsubscribe`` field
   (``unsubscribe.py``); bulk mail gets one copy per recipient with our List-Unsubscribe
   fields added before signing, unless the sender set its own (without ``unsubscribe_url``
   it gets none: a warning at start, and the ``signed`` event says so); other mail is
   signed once for all recipients;
4. the return paths (and the unsubscribe mailto) are at the From domain's own return-path
   host when it is a verified domain of the message's tenant, so SPF aligns for DMARC
   (``returnpath.py``), else at ``signer.bounce_domain``;
5. every copy is signed in the pool (all cores), then fanned out (``fanout.py``) to its lane,
   ``postline.outbound.bulk`` for bulk mail and ``postline.outbound`` for the rest, so a bulk
   backlog never sits ahead of a password reset in a partition; a ``signed`` event says
   which lane and why;
6. a message whose send-at (``Submission.send_at``) is still ahead goes to a retry tier
   instead of its lane, for its first pass (``shared.sendat``): the deliverer's retry loop
   releases it to the lane when due. The ``signed`` event says until when it is held;
7. open and click tracking (``tracking/``), when the message, its domain, its tenant or
   ``[signer.tracking]`` asks for it, rewrites each recipient's copy before signing (the
   tokens name the recipient, so such mail gets one copy per recipient, as bulk mail with
   our unsubscribe fields does); a message that cannot be rewritten safely goes untouched
   with a ``tracking`` event. The ``signed`` event says what was tracked;
8. before any of it, a message with 8-bit content is made 7-bit (``sevenbit.py``: its 8-bit
   parts quoted-printable or base64), so the signature holds on the way to an MX without
   8BITMIME too (RFC 6152); what cannot be converted stays 8-bit (``body_8bit`` on its
   Deliveries; the deliverer bounces it with 5.6.3 at such an MX). The ``signed`` event
   says which.

The batch loop (``shared.runtime.batch``) publishes everything returned here and commits the input
offsets in one transaction. This module owns none of that, nor DKIM itself (``dkim.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from services.signer.config import SignerConfig
from services.signer.fanout import Envelope, deliveries, recipient_domain
from services.signer.headers import from_domain, has_field, prepend
from services.signer.keys import KeyStore, SigningKey
from services.signer.metrics import (
    CONVERTED,
    FAILED,
    KEPT_8BIT,
    SIGNED,
    SUPPRESSED,
    UNSIGNED,
    SignerMetrics,
)
from services.signer.pool import KeyRef, SigningPool, SignJob, SignOutcome
from services.signer.returnpath import ReturnPaths
from services.signer.sevenbit import to_7bit
from services.signer.tracking.settings import Wanted
from services.signer.tracking.tracker import Decision, Tracker
from services.signer.unsubscribe import bulk_reason, unsubscribe_fields, wants_headers
from shared.errors import PoisonRecord, Untrackable
from shared.queue import index as queue_index
from shared.runtime.batch import Item
from shared.sendat import next_pass, tier_lengths
from shared.suppressions import SuppressionTable
from shared.tenants import TenantTable
from shared.wire.records import Delivery, Event, EventKind, Submission
from shared.wire.topics import (
    DEFAULT_RETRY_TIERS,
    EVENTS,
    OutRecord,
    Topic,
    lane_of,
    retry_topic,
)

STAGE = "signer"


@dataclass
class _Copy:
    recipients: tuple[str, ...]
    data: bytes  # unsigned, with any per-copy fields added


@dataclass
class _Plan:
    submission: Submission
    keys: list[SigningKey] = field(default_factory=list)
    bulk: bool = False
    bulk_reason: str = ""  # why it is bulk (unsubscribe.bulk_reason)
    per_recipient: bool = False
    bounce_domain: str = ""  # the return paths' domain (returnpath.py)
    copies: list[_Copy] = field(default_factory=list)
    outputs: list[OutRecord] = field(default_factory=list)  # events decided while planning
    result: str = ""  # set when planning already decided the outcome
    tracking: Decision = field(default_factory=Decision)
    eight_bit: str = ""  # the signed event's note on 8-bit content ("" for 7-bit mail)


class SignerPipeline:
    """Turns a batch of Submissions into output records (see the module docstring)."""

    def __init__(
        self,
        config: SignerConfig,
        *,
        secret: bytes,
        store: KeyStore,
        pool: SigningPool,
        suppressions: SuppressionTable,
        metrics: SignerMetrics,
        log: logging.Logger,
        clock: Callable[[], float] = time.time,
        tenants: TenantTable | None = None,
        retry_tiers: Sequence[str] = DEFAULT_RETRY_TIERS,
    ) -> None:
        self.config = config
        #: The deliverer's retry tiers (``deliverer.retry.tiers``), where send-at mail waits.
        self.tiers: list[tuple[float, Topic[Delivery]]] = [
            (seconds, retry_topic(name)) for seconds, name in tier_lengths(retry_tiers)
        ]
        # Without a tenant table (tests of the pipeline alone) every message uses the global
        # bounce domain, as before tenants. (Not ``tenants or ...``: an empty table is falsy.)
        table = TenantTable(log) if tenants is None else tenants
        self.tenants = table  # a tenant's settings may make all its mail bulk
        self.return_paths = ReturnPaths(table, config.bounce_domain)
        self.store = store
        self.pool = pool
        self.suppressions = suppressions
        self.metrics = metrics
        self.log = log
        self.clock = clock
        self.secret = secret
        if not config.unsubscribe_url:
            # RFC 8058 / the large mailbox providers' bulk sender rules want one-click
            # unsubscribe on bulk mail: say once, at start, that it will be missing.
            log.warning(
                "signer.unsubscribe_url is not set: bulk mail goes out without "
                "List-Unsubscribe unless the sender set its own"
            )
        if (config.tracking.opens or config.tracking.clicks) and not config.tracking.host:
            log.warning(
                "signer.tracking turns tracking on but signer.tracking.host is not set: "
                "mail without a tenant or domain tracking host goes untracked"
            )
        self.tracker = Tracker(
            config.tracking,
            secret=secret,
            tenants=table,
            unsubscribe_url=config.unsubscribe_url,
        )
        self.envelope = Envelope(
            verp=config.verp,
            verp_local=config.verp_local,
            bounce_domain=config.bounce_domain,
            secret=secret,
            max_message_age=config.max_message_age,
            first_attempt_delay=config.first_attempt_delay,
        )

    async def handle(self, items: Sequence[Item[Submission]]) -> list[OutRecord]:
        """Sign and fan out a batch; the outputs to publish in the batch's transaction."""
        now = self.clock()
        plans = [self._plan(item.record, now) for item in items]
        jobs = [
            SignJob(
                copy.data,
                tuple(KeyRef.of(k) for k in plan.keys),
                int(now),
                int(self.config.signature_expiry),
            )
            for plan in plans
            if plan.keys
            for copy in plan.copies
        ]
        outcomes = iter(await self.pool.sign(jobs))
        outputs: list[OutRecord] = []
        for plan in plans:
            signed = [next(outcomes) for _ in plan.copies] if plan.keys else []
            outputs += self._finish(plan, signed, now)
        return outputs

    def _plan(self, submission: Submission, now: float) -> _Plan:
        poison_if_unusable(submission)
        submission, eight_bit = self._seven_bit(submission)
        plan = _Plan(submission, eight_bit=eight_bit)
        # Ingest's events for this message (``accepted``...) come first, in this transaction.
        plan.outputs = [EVENTS.out(event) for event in submission.events]
        sender_domain = from_domain(submission.data)
        tenant = self.tenants.get(submission.tenant)
        plan.bulk_reason = bulk_reason(
            submission,
            sender_domain,
            self.config.bulk_rules,
            tenant_bulk=tenant is not None and tenant.settings.bulk,
        )
        plan.bulk = bool(plan.bulk_reason)
        kept = self._drop_suppressed(plan, sender_domain if plan.bulk else "", now)
        if not kept:
            plan.result = SUPPRESSED
            return plan
        plan.keys = self._choose_keys(submission, sender_domain, now)
        plan.bounce_domain = self.return_paths.host(submission.tenant, sender_domain)
        if not plan.keys and not self.config.allow_unsigned:
            plan.result = FAILED
            plan.outputs.append(
                self._event(
                    submission,
                    EventKind.FAILED,
                    now,
                    check="dkim",
                    detail=f"no DKIM key for {sender_domain or 'the From domain'} and no fallback "
                    "signing domain; allow_unsigned is off",
                )
            )
            return plan
        plan.tracking = self._tracking(submission, sender_domain)
        if plan.tracking.refused is not None:
            plan.outputs.append(
                self._untracked(submission, plan.tracking.wanted, plan.tracking.refused, now)
            )
        unsubscribe = plan.bulk and wants_headers(self.config, submission.data)
        if unsubscribe or plan.tracking.tracked:
            plan.per_recipient = True
            started = time.perf_counter()
            plan.copies = [
                _Copy((rcpt,), self._personal(plan, rcpt, sender_domain, unsubscribe, now))
                for rcpt in kept
            ]
            if plan.tracking.tracked:
                self.metrics.tracking_seconds.observe(time.perf_counter() - started)
        else:
            plan.copies = [_Copy(tuple(kept), submission.data)]
        return plan

    def _seven_bit(self, submission: Submission) -> tuple[Submission, str]:
        """The Submission with its content made 7-bit where possible, ``body_8bit`` saying
        what is left (decided on the bytes: the flag of an older writer may be unset), and
        the signed event's note."""
        if submission.data.isascii():
            if not submission.body_8bit:
                return submission, ""
            return msgspec.structs.replace(submission, body_8bit=False), ""
        conversion = to_7bit(submission.data)
        if conversion.kept_8bit:
            self.metrics.eight_bit.labels(KEPT_8BIT).inc()
            note = f"; stays 8-bit: {conversion.kept_8bit}"
        else:
            self.metrics.eight_bit.labels(CONVERTED).inc()
            note = f"; 8-bit content made 7-bit ({conversion.parts} parts re-encoded)"
        converted = msgspec.structs.replace(
            submission, data=conversion.data, body_8bit=bool(conversion.kept_8bit)
        )
        return converted, note

    def _personal(
        self, plan: _Plan, rcpt: str, sender_domain: str, unsubscribe: bool, now: float
    ) -> bytes:
        """One recipient's copy: its tracked links and pixel, its unsubscribe fields."""
        submission = plan.submission
        data = self.tracker.copy(plan.tracking, submission, rcpt, int(now))
        if not unsubscribe:
            return data
        fields = unsubscribe_fields(
            self.config,
            self.secret,
            rcpt,
            sender_domain,
            submission.id,
            # The bouncer takes the mailto at any return-path host it accepts.
            mailto_domain=self.config.unsubscribe_mailto_domain or plan.bounce_domain,
        )
        return prepend(data, fields)

    def _tracking(self, submission: Submission, sender_domain: str) -> Decision:
        """The message's tracking decision, counted."""
        decision = self.tracker.decide(submission, sender_domain)
        if decision.refused is not None:
            self.metrics.tracking_skipped.labels(decision.refused.reason).inc()
        elif decision.template is not None:
            self.metrics.tracked_messages.inc()
            self.metrics.tracked_links.inc(decision.template.links)
        return decision

    def _untracked(
        self, submission: Submission, wanted: Wanted, refused: Untrackable, now: float
    ) -> OutRecord:
        """The ``tracking`` event of a message sent untouched although tracking was asked."""
        return self._event(
            submission,
            EventKind.TRACKING,
            now,
            check="tracking",
            classification=refused.reason,
            detail=f"sent without {wanted.describe()} tracking: {refused.detail}",
        )

    def _drop_suppressed(self, plan: _Plan, scope: str, now: float) -> list[str]:
        """Recipients not suppressed globally, for the tenant, nor for the sender domain
        ``scope`` ("" for non-bulk mail)."""
        kept = []
        tenant = plan.submission.tenant
        for rcpt in plan.submission.rcpt_to:
            if self.suppressions.is_suppressed(rcpt, tenant=tenant, sender_domain=scope):
                self.metrics.suppressed.inc()
                plan.outputs.append(
                    self._event(
                        plan.submission,
                        EventKind.SUPPRESSED,
                        now,
                        recipient=rcpt,
                        domain=recipient_domain(rcpt),
                        check="suppression",
                        bulk=plan.bulk,
                    )
                )
            else:
                kept.append(rcpt)
        return kept

    def _choose_keys(
        self, submission: Submission, sender_domain: str, now: float
    ) -> list[SigningKey]:
        user = submission.client.auth_user or ""
        candidates = [
            sender_domain,
            self.config.user_signing_domains.get(user, ""),
            self.config.signing_domain,
        ]
        for domain in candidates:
            keys = self.store.signing_keys(domain, now) if domain else []
            if keys:
                return keys
        return []

    def _finish(self, plan: _Plan, signed: list[SignOutcome], now: float) -> list[OutRecord]:
        submission = plan.submission
        outputs = list(plan.outputs)
        if plan.result:
            self.metrics.messages.labels(plan.result).inc()
            return outputs
        failure = next((outcome.error for outcome in signed if outcome.error), "")
        if failure:
            self.metrics.messages.labels(FAILED).inc()
            outputs.append(
                self._event(submission, EventKind.FAILED, now, check="dkim", detail=failure)
            )
            return outputs
        made = []
        envelope = dataclasses.replace(self.envelope, bounce_domain=plan.bounce_domain)
        for index, copy in enumerate(plan.copies):
            header = signed[index].header if signed else b""
            made += deliveries(
                submission,
                copy.recipients,
                header + copy.data,
                envelope,
                now,
                per_recipient=plan.per_recipient,
                bulk=plan.bulk,
            )
        self._count(plan, signed, len(made))
        for delivery in made:
            outputs += self._place(delivery, now)
        outputs.append(
            self._event(
                submission,
                EventKind.SIGNED,
                now,
                check="dkim",
                detail=_describe(plan.keys, len(made))
                + plan.eight_bit
                + self._bulk_note(plan)
                + plan.tracking.note()
                + _held(plan, now),
                bulk=plan.bulk,
            )
        )
        return outputs

    def _place(self, delivery: Delivery, now: float) -> list[OutRecord]:
        """``delivery`` on its lane, or in a retry tier for the first pass of its send-at
        with its entry in the deferred queue's index (``shared.queue.index``)."""
        if delivery.send_at <= now:
            return [lane_of(delivery).out(delivery)]
        topic, until = next_pass(self.tiers, now, delivery.send_at)
        waiting = msgspec.structs.replace(delivery, not_before=until)
        return queue_index.scheduled(waiting, topic, now)

    def _bulk_note(self, plan: _Plan) -> str:
        if not plan.bulk:
            return ""
        note = f"; bulk ({plan.bulk_reason})"
        own = has_field(plan.submission.data, "List-Unsubscribe")
        if not own and not self.config.unsubscribe_url:
            note += "; bulk without List-Unsubscribe: signer.unsubscribe_url is not set"
        return note

    def _count(self, plan: _Plan, signed: list[SignOutcome], made: int) -> None:
        self.metrics.messages.labels(SIGNED if plan.keys else UNSIGNED).inc()
        self.metrics.fanout.observe(made)
        for outcome in signed:
            self.metrics.sign_seconds.observe(outcome.seconds)
            for key in plan.keys:
                self.metrics.signatures.labels(key.algorithm).inc()

    def _event(
        self,
        submission: Submission,
        kind: EventKind,
        now: float,
        *,
        check: str,
        recipient: str = "",
        domain: str = "",
        detail: str = "",
        bulk: bool = False,
        classification: str = "",
    ) -> OutRecord:
        return EVENTS.out(
            Event(
                kind=kind,
                message_id=submission.id,
                at=now,
                recipient=recipient,
                domain=domain,
                sender=submission.mail_from,
                check=check,
                classification=classification,
                detail=detail,
                tags=submission.tags,
                stage=STAGE,
                bulk=bulk,
                tenant=submission.tenant,
            )
        )


def _held(plan: _Plan, now: float) -> str:
    """The signed event's note on a send-at still ahead (RFC 3339, UTC)."""
    send_at = plan.submission.send_at
    if send_at <= now:
        return ""
    return "; held until " + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(send_at))


def _describe(keys: list[SigningKey], deliveries_made: int) -> str:
    if not keys:
        return f"unsigned; {deliveries_made} deliveries"
    signatures = ", ".join(f"{k.algorithm} d={k.domain} s={k.selector}" for k in keys)
    return f"{signatures}; {deliveries_made} deliveries"


def poison_if_unusable(submission: Submission) -> None:
    """Refuse a Submission no stage could ever handle (the batch loop dead-letters it)."""
    if not submission.rcpt_to:
        raise PoisonRecord("submission has no recipients")
    try:
        valid = len(bytes.fromhex(submission.id)) == 16
    except ValueError:
        valid = False
    if not valid:
        # VERP tokens carry the id as 16 bytes (shared.wire.tokens); ingest always makes such ids.
        raise PoisonRecord(f"submission id {submission.id!r} is not 32 hex digits")
