"""One message through the content scanner: size limit, verdict, outcome, marks, event.

:meth:`Scanner.scan` is what the SMTP handler and the HTTP API call once every other check
has passed and the message's final bytes exist. It returns a :class:`Scanned`: the outcome,
the bytes to hand on (marked when tagged), the ``scanned`` event and, for a refusal, the
decision to answer with. A scanner outage follows ``on_failure``: sent unscanned with an
event and a metric (``open``) or ``451 4.7.0`` (``closed``); never a 5xx, never lost mail.
The reply never names rspamd's symbols: the client gets a reference (our message id), the
operator finds the verdict in the event under that id.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from services.ingest import replies
from services.ingest.config import ScanningConfig, scanner_url
from services.ingest.metrics import IngestMetrics
from services.ingest.policy.base import Decision, SessionInfo, Transaction
from services.ingest.scanning.decide import Outcome, decide
from services.ingest.scanning.rewrite import mark
from services.ingest.scanning.rspamd import Envelope, RspamdClient, ScannerUnavailable, Verdict
from shared.wire.records import Event, EventKind, Quarantined, Submission, now

STAGE = "ingest"
SCANNER = "rspamd"
#: The check name of a refusal when the scanner could not answer (``on_failure = "closed"``).
UNAVAILABLE_CHECK = "rspamd_unavailable"


@dataclass(frozen=True)
class Scanned:
    """What the scan made of one message."""

    outcome: Outcome
    data: bytes  # the bytes to hand on
    event: Event  # the ``scanned`` event
    decision: Decision | None = None  # set when the client is refused
    verdict: Verdict | None = None

    def quarantined(self, submission: Submission) -> Quarantined:
        """The quarantine record of ``submission`` (outcome ``quarantined``)."""
        verdict = self.verdict
        assert verdict is not None
        return Quarantined(
            submission=submission,
            at=self.event.at,
            scanner=SCANNER,
            action=verdict.action,
            score=verdict.score,
            required=verdict.required,
            symbols=self.event.symbols,
            reference=submission.id,
        )


class Scanner:
    """The content scanner of one ingest process."""

    def __init__(
        self,
        config: ScanningConfig,
        metrics: IngestMetrics,
        log: logging.Logger,
        client: RspamdClient | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.log = log
        self.client = client
        if client is None and config.url:
            self.client = RspamdClient(scanner_url(config.url), float(config.timeout))
        #: Why this process does not scan ("" when it does); ``postline run`` prints it.
        self.off_reason = "" if config.url else "no [ingest.scanning] url"

    @property
    def active(self) -> bool:
        """Whether messages are sent to the scanner at all."""
        return self.client is not None and not self.off_reason

    async def start(self) -> None:
        """With ``probe_at_start``: turn scanning off for this run when the scanner does not
        answer (a laptop without rspamd), saying so."""
        if self.client is None or not self.config.probe_at_start:
            return
        if not await self.client.ping():
            self.off_reason = f"no rspamd answering at {self.client.url}"
            self.log.warning(
                "content scanning off for this run",
                extra={"reason": self.off_reason, "key": "ingest.scanning.probe_at_start"},
            )

    async def close(self) -> None:
        """Close the scanner's connections."""
        if self.client is not None:
            await self.client.close()

    def mode(self, tenant_mode: str) -> str:
        """The mode for a tenant whose own setting is ``tenant_mode`` ("" = the global one)."""
        return tenant_mode or self.config.mode

    async def scan(
        self, info: SessionInfo, txn: Transaction, data: bytes, tenant_mode: str = ""
    ) -> Scanned | None:
        """Scan ``data`` (the message as it will be handed on); ``None`` when scanning is
        off for this process or this tenant."""
        mode = self.mode(tenant_mode)
        if not self.active or mode == "off":
            return None
        assert self.client is not None
        if len(data) > self.config.max_size:
            return self._over_size(info, txn, data)
        envelope = Envelope(
            mail_from=txn.mail_from,
            rcpt_to=tuple(r for r in txn.rcpt_to if r not in txn.dropped),
            ip=info.ip,
            helo=info.helo or "",
            user=txn.credential,
            queue_id=txn.id,
        )
        started = time.monotonic()
        try:
            verdict = await self.client.check(data, envelope)
        except ScannerUnavailable as exc:
            return self._unavailable(info, txn, data, str(exc))
        finally:
            self.metrics.scan_seconds.observe(time.monotonic() - started)
        outcome = decide(verdict, mode, self.config.quarantine_score)
        note = ""
        if outcome is Outcome.TAGGED:
            marked = mark(data, verdict, rewrite_subject=mode == "enforce")
            data, note = marked.data, marked.note
        self.metrics.scans.labels(outcome.value).inc()
        event = self._event(info, txn, outcome, verdict, note)
        return Scanned(outcome, data, event, _refusal(outcome, txn.id), verdict)

    def _over_size(self, info: SessionInfo, txn: Transaction, data: bytes) -> Scanned:
        refuse = self.config.over_size == "refuse"
        detail = f"{len(data)} bytes, over the scan limit of {int(self.config.max_size)}"
        outcome = Outcome.REJECTED if refuse else Outcome.SKIPPED
        self.metrics.scans.labels("refused_size" if refuse else Outcome.SKIPPED.value).inc()
        event = self._event(info, txn, outcome, None, detail)
        decision = Decision(replies.TOO_BIG_TO_SCAN, "scan_size") if refuse else None
        return Scanned(outcome, data, event, decision)

    def _unavailable(self, info: SessionInfo, txn: Transaction, data: bytes, why: str) -> Scanned:
        closed = self.config.on_failure == "closed"
        self.metrics.scans.labels(Outcome.UNAVAILABLE.value).inc()
        self.log.warning(
            "content scanner unavailable",
            extra={
                "message_id": txn.id,
                "error": why,
                "answered": "451 4.7.0" if closed else "sent unscanned (on_failure = open)",
            },
        )
        what = "deferred (on_failure = closed)" if closed else "sent unscanned (on_failure = open)"
        event = self._event(info, txn, Outcome.UNAVAILABLE, None, f"{what}: {why}")
        decision = Decision(replies.SCANNER_UNAVAILABLE, UNAVAILABLE_CHECK) if closed else None
        return Scanned(Outcome.UNAVAILABLE, data, event, decision)

    def _event(
        self,
        info: SessionInfo,
        txn: Transaction,
        outcome: Outcome,
        verdict: Verdict | None,
        note: str,
    ) -> Event:
        detail = f"ref {txn.id}"
        figures: dict[str, float] = {}
        symbols: dict[str, float] = {}
        if verdict is not None:
            detail += f"; action {verdict.action}"
            figures = {"score": round(verdict.score, 3), "required": verdict.required}
            symbols = verdict.top(self.config.top_symbols)
        if note:
            detail += f"; {note}"
        return Event(
            kind=EventKind.SCANNED,
            message_id=txn.id,
            at=now(),
            sender=txn.mail_from,
            tls=info.tls or "",
            check=SCANNER,
            classification=outcome.value,
            detail=detail,
            figures=figures,
            symbols=symbols,
            stage=STAGE,
            tenant=txn.tenant,
            credential=txn.credential,
        )


def _refusal(outcome: Outcome, reference: str) -> Decision | None:
    if outcome is Outcome.REJECTED:
        return Decision(replies.content_rejected(reference), SCANNER)
    if outcome is Outcome.SOFT_REJECTED:
        return Decision(replies.content_deferred(reference), SCANNER)
    return None
