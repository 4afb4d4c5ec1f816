"""Sending each closed day's TLS-RPT reports, once, from one replica.

Every ``check_interval`` the sender looks whether there may be work (a day closed, a retry
due, partitions newly owned; else it reads the table only every :data:`RESCAN`). Then it
reads ``postline.tlsrpt`` and, for each policy domain and UTC day whose counts are closed
(``send_delay`` after the day ended, by the injected clock) and not yet settled, adds up the
partitions' counts (``report.py``), looks up the domain's rua (``rua.py``) and sends the
gzip report to each: ``https:`` POSTed (``https.py``), ``mailto:`` submitted through
Postline (``mail.py``). The day is then settled durably: a ``done|<day>|<domain>`` record
(sent, failed or no_rua), published atomically with tombstones for the counts it summed,
so a restart never sends it again.

**One sender per domain-day.** Only the replica that owns the events partition the
domain's key falls in sends it (the deliverer keys ``tls_session`` events by recipient
domain, so that replica usually counted them too); during a rebalance two replicas may
briefly both believe they own it, and a report may then go twice: with the same report id
(``report.report_id``), which receivers use to drop the copy.

A failed send (DNS failure, HTTP error, bus down) is tried again with doubling waits from
``retry_backoff`` (at most an hour) for ``retry_for``, then the day is settled as failed.
Retry state is in memory: after a restart the day is tried afresh (an rua that already
took it gets it again, same report id). Settled marks are removed after
:data:`KEEP_SETTLED`, when no late count can come for their day any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import dns.asyncresolver

from services.bouncer.metrics import TlsRptMetrics
from services.bouncer.tlsrpt import mail
from services.bouncer.tlsrpt.config import TlsRptConfig
from services.bouncer.tlsrpt.counts import DAY, closed, day_of, day_start
from services.bouncer.tlsrpt.https import HttpsReporter, ReportNotPosted
from services.bouncer.tlsrpt.report import (
    Reporter,
    build_report,
    encode,
    filename,
    merge,
    report_id,
)
from services.bouncer.tlsrpt.rua import Rua, RuaLookupFailed, lookup_rua
from shared.bus.base import Bus
from shared.errors import BusError, DecodeError
from shared.wire.records import Submission, TlsRpt
from shared.wire.topics import SUBMITTED, TLSRPT, OutRecord

#: How long a settled mark is kept after its day (then removed: nothing counts that day).
KEEP_SETTLED = 8 * DAY
#: Seconds between reads of the table when no day closed and no retry is due (it holds a
#: record per domain, day and partition: read it when it may hold work, not every tick).
RESCAN = 3600.0
_MAX_BACKOFF = 3600.0

_DayKey = tuple[str, str]  # (day, domain)


@dataclass
class _Retry:
    first_failed: float
    next_at: float = 0.0
    attempts: int = 0
    done: set[Rua] = field(default_factory=set)  # the ruas that took it already


class ReportSender:
    """The sender; :meth:`run` until stopping, or :meth:`tick` once (tests)."""

    def __init__(
        self,
        config: TlsRptConfig,
        *,
        bus: Bus,
        owns: Callable[[str], Awaitable[bool]],
        clock: Callable[[], float],
        resolver: dns.asyncresolver.Resolver,
        https: HttpsReporter,
        metrics: TlsRptMetrics,
        log: logging.Logger,
        publish_timeout: float,
    ) -> None:
        self.config = config
        self.bus = bus
        self.owns = owns
        self.clock = clock
        self.resolver = resolver
        self.https = https
        self.metrics = metrics
        self.log = log
        self.timeout = publish_timeout
        self.reporter = Reporter(config.organization_name, config.contact_info, config.submitter)
        self._retries: dict[_DayKey, _Retry] = {}
        self._scanned_at = -RESCAN  # time.monotonic() of the last read of the table
        self._scanned_through = ""  # the newest closed day then

    async def run(self, stopping: asyncio.Event) -> None:
        """Look for days due every ``check_interval`` until ``stopping`` is set."""
        await self.https.start()
        try:
            while not stopping.is_set():
                try:
                    if self.scan_due():
                        await self.tick()
                except BusError as exc:  # the bus is down: the next tick tries again
                    self.log.warning("tlsrpt: bus failure", extra={"error": str(exc)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), float(self.config.check_interval))
        finally:
            await self.https.close()

    def scan_due(self) -> bool:
        """Whether reading the table may find work: a day closed since the last read, a
        retry is due, or :data:`RESCAN` passed (partitions taken over in a rebalance, a
        count that came back for a settled day, settled marks to remove)."""
        now = self.clock()
        if self._closed_through(now) != self._scanned_through:
            return True
        if any(retry.next_at <= now for retry in self._retries.values()):
            return True
        return time.monotonic() - self._scanned_at >= RESCAN

    def rescan(self) -> None:
        """Read the table at the next tick (the replica's partitions changed)."""
        self._scanned_at = -RESCAN

    def _closed_through(self, now: float) -> str:
        """The newest day whose counts are closed at ``now``."""
        return day_of(now - DAY - float(self.config.send_delay))

    async def tick(self) -> int:
        """Send what is due and clean up; returns how many days were settled."""
        self._scanned_at = time.monotonic()
        self._scanned_through = self._closed_through(self.clock())
        table = await self.bus.read_table(TLSRPT.name)
        counts: dict[_DayKey, list[tuple[str, TlsRpt]]] = {}
        settled: dict[_DayKey, str] = {}
        for raw_key, value in table.items():
            key = raw_key.decode("utf-8", "replace")
            try:
                record = TLSRPT.decode(value)
            except DecodeError as exc:  # a newer writer's record: not ours to judge
                self.log.warning(
                    "tlsrpt: undecodable record", extra={"key": key, "error": str(exc)}
                )
                continue
            where = (record.day, record.domain)
            if record.state == "counts":
                counts.setdefault(where, []).append((key, record))
            else:
                settled[where] = key
        now = self.clock()
        done = 0
        for where in sorted(counts):
            day, domain = where
            if not closed(day, now, float(self.config.send_delay)):
                continue
            if not await self.owns(domain):
                continue
            keys = [key for key, _ in counts[where]]
            if where in settled:  # settled, and a count came back: remove it again
                await self._publish([TLSRPT.tombstone(k) for k in keys])
                continue
            if await self._settle(day, domain, [r for _, r in counts[where]], keys, now):
                done += 1
        for (day, domain), key in sorted(settled.items()):
            if now >= day_start(day) + KEEP_SETTLED and await self.owns(domain):
                await self._publish([TLSRPT.tombstone(key)])
        return done

    async def _settle(
        self, day: str, domain: str, records: list[TlsRpt], keys: list[str], now: float
    ) -> bool:
        """Send one domain-day's report; ``True`` when it is settled now."""
        where = (day, domain)
        retry = self._retries.get(where)
        if retry is not None and retry.next_at > now:
            return False
        rid = report_id(self.config.submitter, domain, day)
        try:
            ruas = await lookup_rua(self.resolver, domain)
        except RuaLookupFailed as exc:
            return await self._failed(where, now, [("none", str(exc))], keys, rid)
        if not ruas:
            self.metrics.reports.labels("none", "no_rua").inc()
            await self._mark(
                where, "no_rua", rid=rid, detail="no _smtp._tls TLSRPTv1 record", keys=keys, now=now
            )
            self._retries.pop(where, None)
            return True
        body = encode(build_report(self.reporter, domain, day, merge(records)))
        retry = self._retries.setdefault(where, _Retry(first_failed=0.0))
        errors: list[tuple[str, str]] = []
        for rua in ruas:  # the POSTs first: whether they took it decides what follows
            if rua.scheme != "https" or rua in retry.done:
                continue
            try:
                await self.https.post(rua.target, body)
            except ReportNotPosted as exc:
                errors.append((rua.scheme, f"{rua.target}: {exc}"))
                continue
            self._sent(rua, retry, where, rid)
        mails = [r for r in ruas if r.scheme == "mailto" and r not in retry.done]
        submissions = [
            SUBMITTED.out(self._mail(rua, domain=domain, day=day, rid=rid, body=body, now=now))
            for rua in mails
        ]
        if not errors:
            # The mails, the mark and the tombstones in one atomic publish: a crash can
            # neither send the mails without settling the day nor settle it without them.
            sent_to = ", ".join(r.target for r in ruas)
            await self._mark(
                where, "sent", rid=rid, detail=sent_to, keys=keys, now=now, extra=submissions
            )
            for rua in mails:
                self._sent(rua, retry, where, rid)
            self._retries.pop(where, None)
            return True
        if submissions:
            try:
                await self._publish(submissions)
            except BusError as exc:
                errors += [("mailto", f"{rua.target}: {exc}") for rua in mails]
            else:
                for rua in mails:
                    self._sent(rua, retry, where, rid)
        return await self._failed(where, now, errors, keys, rid)

    def _sent(self, rua: Rua, retry: _Retry, where: _DayKey, rid: str) -> None:
        """``rua`` took the report: not again for this day (while this process runs)."""
        retry.done.add(rua)
        self.metrics.reports.labels(rua.scheme, "sent").inc()
        self.log.info(
            "tlsrpt report sent",
            extra={"domain": where[1], "day": where[0], "to": rua.target, "report_id": rid},
        )

    def _mail(
        self, rua: Rua, *, domain: str, day: str, rid: str, body: bytes, now: float
    ) -> Submission:
        """The report mailed to ``rua``, as a Submission for the signer."""
        message = mail.build_message(
            from_address=self.config.from_address,
            to=rua.target,
            domain=domain,
            submitter=self.config.submitter,
            rid=rid,
            filename=filename(self.config.submitter, domain, day, rid),
            report=body,
            at=now,
        )
        return mail.submission(
            from_address=self.config.from_address, to=rua.target, message=message, at=now
        )

    async def _failed(
        self,
        where: _DayKey,
        now: float,
        errors: list[tuple[str, str]],
        keys: list[str],
        rid: str,
    ) -> bool:
        retry = self._retries.setdefault(where, _Retry(first_failed=now))
        if not retry.attempts:
            retry.first_failed = now  # the first failure: retry_for counts from here
        retry.attempts += 1
        detail = "; ".join(text for _, text in errors)[:500]
        if now - retry.first_failed >= float(self.config.retry_for):
            for via, _ in errors:
                self.metrics.reports.labels(via, "failed").inc()
            self.log.warning(
                "tlsrpt report given up",
                extra={"domain": where[1], "day": where[0], "error": detail},
            )
            await self._mark(where, "failed", rid=rid, detail=detail, keys=keys, now=now)
            self._retries.pop(where, None)
            return True
        for via, _ in errors:
            self.metrics.reports.labels(via, "retry").inc()
        wait = min(float(self.config.retry_backoff) * 2 ** (retry.attempts - 1), _MAX_BACKOFF)
        retry.next_at = now + wait
        self.log.info(
            "tlsrpt report not sent, will retry",
            extra={"domain": where[1], "day": where[0], "error": detail, "wait": wait},
        )
        return False

    async def _mark(
        self,
        where: _DayKey,
        state: str,
        *,
        rid: str,
        detail: str,
        keys: list[str],
        now: float,
        extra: Sequence[OutRecord] = (),
    ) -> None:
        """Settle a day durably: the mark and its counts' tombstones, atomically."""
        day, domain = where
        mark = TlsRpt(
            domain=domain, day=day, state=state, updated_at=now, report_id=rid, detail=detail
        )
        await self._publish([*extra, TLSRPT.out(mark)] + [TLSRPT.tombstone(k) for k in keys])

    async def _publish(self, records: list[OutRecord]) -> None:
        await self.bus.publish(records, timeout=self.timeout)
