"""The per-domain active window: a bounded queue of Deliveries and the workers that send them.

A queue sends from one source address (``sources.py``; none: the OS's choice): its sessions
are bound to it, greet with its EHLO name, and its shaper is that address's with the
destination (``shaping.py``).

Owns: :class:`DomainQueue` (Postfix qmgr's limited active queue): at most
``policy.window`` Deliveries of one domain in memory; workers up to the (throttle-adjusted)
concurrency, each holding one connection for reuse up to ``messages_per_connection``; pacing
to the (throttle-adjusted) messages per minute. What does not fit - a full window, a suspended
(throttled) domain, a stopping deliverer - is handed back as *shed* so the caller moves it to a
retry tier instead of blocking the partition. A queue belongs to one lane (``lanes.py``): a
bulk queue's workers yield their connection slot to a waiting transactional queue of the
same destination after their current transaction (``shaping.py`` says why). An operator's
suspension (``control.py``) holds a job before its attempt, also once the destination's
provider becomes known from its MX; queued jobs an operator's action concerns can be taken
out (:meth:`DomainQueue.extract`). Does not build records (``report.py``) nor commit
anything (``engine.py``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Callable, Collection, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from services.deliverer.config import DelivererConfig
from services.deliverer.outcome import Classified, DeliveryFailure, Outcome, classify
from services.deliverer.pool import Connector
from services.deliverer.session import Session
from services.deliverer.shaping import Shapers
from services.deliverer.sources import OS_SOURCE, Source
from services.deliverer.throttle import Throttle, ThrottleChange, is_throttle_reply
from services.deliverer.transport import requirement
from services.deliverer.transport.policy import TlsOutcome
from services.deliverer.warmup import Reservation
from shared.bus.base import TopicPartition
from shared.providers import OTHER
from shared.runtime.watermark_loop import Ticket
from shared.tlsrequire import NONE, TlsRequirement
from shared.wire.records import Delivery

SHED_WINDOW_FULL = "window_full"
SHED_THROTTLED = "throttled"
SHED_STOPPING = "stopping"
#: Shed at admission, before any queue (engine.py): every address of the Delivery's source
#: pool has used its warm-up allowance for the day and the pool waits (sources.py) ...
SHED_WARMUP = "warmup_allowance"
#: ... or the sender (its tenant or sending domain) is paused: held until resumed (hold.py).
SHED_PAUSED = "paused"
#: ... or an operator suspended its domain, provider, tenant or source address (control.py).
SHED_SUSPENDED = "suspended"


@dataclass(eq=False)  # a job is itself: compared and hashed by identity
class Job:
    """One Delivery taken from the bus, with its place behind the watermark."""

    delivery: Delivery
    ticket: Ticket[Delivery]
    ended: bool = False  # the queue reported its result (or gave it up)
    source: Source = OS_SOURCE  # the local address it is sent from (sources.py)
    reservation: Reservation | None = None  # counted against a warming address's allowance

    @property
    def tp(self) -> TopicPartition:
        """The partition the Delivery came from."""
        return self.ticket.tp

    @property
    def offset(self) -> int:
        """The Delivery's offset in its partition."""
        return self.ticket.offset


@dataclass
class AttemptTiming:
    """Where an attempt's time went, in seconds (the mail log's delays, as Postfix's
    ``delays=a/b/c/d``): the MX lookup, connection setup (TCP, greeting, EHLO, STARTTLS)
    and the transaction. A reused connection costs neither lookup nor setup."""

    dns: float = 0.0
    connect: float = 0.0
    transmit: float = 0.0


@dataclass
class JobResult:
    """How a job ended: per-recipient results of an attempt, or shed without an attempt."""

    results: dict[str, Classified] = field(default_factory=dict)
    mx: str = ""
    tls: str = ""
    provider: str = OTHER
    seconds: float = 0.0
    shed: str = ""  # a SHED_* reason when no attempt was made
    not_before: float = 0.0  # for shed jobs: not worth trying before this
    throttle: list[ThrottleChange] = field(default_factory=list)
    source: str = ""  # the local address the attempt was sent from ("" = unknown, the OS's)
    relay: str = ""  # "host[address]:port" the transaction was sent to (the mail log)
    cipher: str = ""  # the TLS cipher suite, when TLS was used
    #: The server offered DSN (RFC 3461) and got the sender's parameters: it owes the
    #: success and delay notices, not us (5.2.1).
    dsn: bool = False
    cause: str = ""  # why no SMTP reply came, in words (DNS, no host answered), when known
    timing: AttemptTiming = field(default_factory=AttemptTiming)
    #: What governed the session's transport security and whether the peer was verified
    #: (the delivery events' ``tls_security`` and ``tls_verified``).
    tls_security: str = ""
    tls_verified: bool = False
    #: The connection attempts this job made (none when it reused a session): one
    #: ``tls_session`` event each.
    tls_sessions: list[TlsOutcome] = field(default_factory=list)


Done = Callable[[Job, JobResult], None]
#: Whether a job must be held now, sent to the given provider: the shed result if so.
Hold = Callable[[Job, str], "JobResult | None"]
Activity = Callable[[], AbstractAsyncContextManager[None]]
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


class DomainQueue:
    """The active window and workers of one recipient domain, from one source address."""

    def __init__(
        self,
        domain: str,
        cfg: DelivererConfig,
        connector: Connector,
        *,
        patterns: list[re.Pattern[str]],
        done: Done,
        activity: Activity,
        shapers: Shapers,
        spawn: Spawn,
        bulk: bool = False,
        source: Source = OS_SOURCE,
        hold: Hold | None = None,
    ) -> None:
        self.domain = domain
        self._hold = hold  # an operator's suspension (control.py); None: never held
        self.bulk = bulk  # the bulk lane's queue: transactional queues go first
        self.provider = shapers.provider_of(domain)
        self.policy = cfg.policy_for(domain, self.provider)
        self._shapers = shapers
        self.source = source  # every session of this queue is bound to it
        self.shaper = shapers.for_domain(domain, self.provider, source.address)
        self.shaper.queues += 1
        self._cfg = cfg
        self._connector = connector
        self._patterns = patterns
        self._done = done
        self._activity = activity
        self._spawn_task = spawn
        self._jobs: deque[Job] = deque()
        self._ready = asyncio.Event()
        self._size = 0  # queued + being sent
        self._workers = 0
        self._starting = 0  # workers spawned that have not looked for a job yet
        self._idle = 0
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._sending: set[Job] = set()  # in an SMTP transaction now
        self.last_error = ""  # the destination's last temporary failure, in words
        self.last_error_at = 0.0

    @property
    def size(self) -> int:
        """Deliveries of this domain in memory."""
        return self._size

    @property
    def throttle(self) -> Throttle:
        """The throttle state this domain is subject to (its own or its provider's)."""
        return self.shaper.throttle

    @property
    def idle(self) -> bool:
        """No work and no worker: the queue may be dropped."""
        return self._size == 0 and self._workers == 0

    def offer(self, job: Job) -> str:
        """Take ``job`` into the window; returns a SHED_* reason when it does not fit."""
        if self._stopping:
            return SHED_STOPPING
        if self.throttle.suspended(time.time()):
            return SHED_THROTTLED
        if self._size >= self.policy.window:
            return SHED_WINDOW_FULL
        self._size += 1
        self._jobs.append(job)
        self._ready.set()
        self._spawn()
        return ""

    @property
    def queued(self) -> list[Job]:
        """The jobs waiting for a connection."""
        return list(self._jobs)

    @property
    def sending(self) -> list[Job]:
        """The jobs in an SMTP transaction now."""
        return list(self._sending)

    def extract(self, wanted: Callable[[Job], bool]) -> list[Job]:
        """Take the queued jobs ``wanted`` says (not those in a transaction) out of the
        window, ended here: the caller reports how they end (an operator's action)."""
        taken = [job for job in self._jobs if wanted(job)]
        for job in taken:
            self._jobs.remove(job)
            job.ended = True
            self._size -= 1
        return taken

    def drop(self, partitions: Collection[TopicPartition]) -> int:
        """Forget the queued jobs of ``partitions`` (lost in a rebalance); how many.

        The partitions' new owner delivers them again from the committed offset, so sending
        them here as well would be a duplicate for every queued job, not just for the one
        SMTP transaction in flight that at-least-once delivery allows. Jobs already in an
        SMTP transaction finish; their results are dropped with the partition's watermark.
        """
        kept = deque(job for job in self._jobs if job.tp not in partitions)
        dropped = len(self._jobs) - len(kept)
        self._jobs = kept
        self._size -= dropped
        return dropped

    def discard(self, tp: TopicPartition, offset: int) -> bool:
        """Give up a queued job (its work is ended elsewhere); ``False`` if not queued."""
        for job in self._jobs:
            if job.tp == tp and job.offset == offset:
                self._jobs.remove(job)
                job.ended = True
                self._size -= 1
                return True
        return False

    def close(self) -> None:
        """The engine forgets this idle queue: its shaper may go once no queue uses it."""
        self.shaper.queues -= 1

    def _spawn(self) -> None:
        """Start workers while jobs wait for one and connection slots are free; else queue
        for a slot (a transactional queue before bulk ones)."""
        while not self._stopping and len(self._jobs) > self._idle + self._starting:
            if not self.shaper.acquire():
                self.shaper.wait(self._spawn, urgent=not self.bulk)
                return
            self._workers += 1
            self._starting += 1
            task = self._spawn_task(self._worker(), f"deliver:{self.domain}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Finish transactions in flight; shed what has not started; wait for the workers."""
        self._stopping = True
        self._shed_all(SHED_STOPPING, time.time())
        self._ready.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _worker(self) -> None:
        session: Session | None = None
        self._starting -= 1
        try:
            while True:
                job = await self._take()
                if job is None:
                    return
                if self._yield_slot(session):
                    self._jobs.appendleft(job)  # others wait for a slot: take turns
                    return
                async with self._activity():
                    self._sending.add(job)
                    try:
                        session = await self._attempt(job, session)
                    except Exception as exc:  # one job's failure must not end the worker
                        await self._abandon(job, session, exc)
                        session = None
                    finally:
                        self._sending.discard(job)
        finally:
            self._workers -= 1
            if session is not None:
                await self._connector.close(session, self.provider)
            self.shaper.release()  # the current shaper: _set_provider moves slots along
            self._spawn()

    async def _abandon(self, job: Job, session: Session | None, exc: Exception) -> None:
        """An attempt raised: end the job as failed (the watermark loop defers it with the
        reason) and drop the connection, whose state is unknown."""
        if not job.ended:
            job.ended = True
            self._size -= 1
            job.ticket.fail(exc)
        if session is not None:
            await self._connector.close(session, self.provider)

    def _yield_slot(self, session: Session | None) -> bool:
        """Whether to give the slot away before the next job: a bulk worker does as soon as a
        transactional queue waits; otherwise at a reconnect, to a waiting queue of the same
        lane or a higher one (round robin per connection)."""
        if self.bulk and self.shaper.priority_waiting:
            return True
        waiting = self.shaper.contended if self.bulk else self.shaper.priority_waiting
        if not waiting or session is None:
            return False
        return not session.usable or session.messages >= self.policy.messages_per_connection

    async def _take(self) -> Job | None:
        """The next job; ``None`` when idle past the timeout, stopping, or over concurrency."""
        while not self._jobs:
            if self._stopping or self.shaper.over_cap or self.shaper.contended:
                return None  # an idle connection never holds a slot another domain waits for
            self._ready.clear()
            self._idle += 1
            self.shaper.idle_on(self._ready, True)
            try:
                await asyncio.wait_for(self._ready.wait(), self._cfg.timeouts.idle)
            except TimeoutError:
                return None
            finally:
                self._idle -= 1
                if not self._idle:
                    self.shaper.idle_on(self._ready, False)
        if self._stopping or self.shaper.over_cap:
            return None
        return self._jobs.popleft()

    async def _attempt(self, job: Job, session: Session | None) -> Session | None:
        now = time.time()
        if self.throttle.suspended(now):
            self._finish(
                job, JobResult(shed=SHED_THROTTLED, not_before=self.throttle.suspended_until)
            )
            return session
        held = self._hold(job, self.provider) if self._hold is not None else None
        if held is not None:
            self._finish(job, held)
            return session
        await self.shaper.pace(urgent=not self.bulk)
        started = time.perf_counter()
        need = requirement.needs(job.delivery)
        if session is not None and (
            not session.usable
            or session.messages >= self.policy.messages_per_connection
            # Never a stricter message over a weaker connection: open one under its need.
            or not requirement.meets(
                session.need, session.tls_outcome, session.offers_requiretls, need
            )
        ):
            await self._connector.close(session, self.provider)
            session = None
        timing = AttemptTiming()
        tls_sessions: list[TlsOutcome] = []
        if session is None:
            try:
                session = await self._connect(timing, job, tls_sessions, need)
            except _Held as suspended:  # the MX named a provider the operator suspended
                self._finish(job, suspended.result)
                return None
            except DeliveryFailure as exc:
                failure = classify(exc)
                results = dict.fromkeys(job.delivery.rcpt_to, failure)
                result = JobResult(
                    results,
                    provider=self.provider,
                    source=self.source.address,
                    cause=exc.detail,
                    timing=timing,
                    tls_sessions=tls_sessions,
                )
                self._complete(job, result, started)
                return None
        sending = time.perf_counter()
        results = await session.send(job.delivery, self.policy.recipients_per_transaction)
        timing.transmit = time.perf_counter() - sending
        self._complete(
            job,
            JobResult(
                results,
                session.target.host,
                session.tls,
                self.provider,
                source=session.source,
                relay=session.relay,
                cipher=session.cipher,
                dsn=session.dsn,
                timing=timing,
                tls_security=session.tls_outcome.security.value,
                tls_verified=session.tls_outcome.verified,
                tls_sessions=tls_sessions,
            ),
            started,
        )
        if not session.usable:
            await self._connector.close(session, self.provider)
            return None
        return session

    async def _connect(
        self,
        timing: AttemptTiming,
        job: Job,
        tls_sessions: list[TlsOutcome],
        need: TlsRequirement = NONE,
    ) -> Session:
        began = time.perf_counter()
        try:
            destination = await self._connector.destination(self.domain)
        finally:
            timing.dns = time.perf_counter() - began
        if destination.provider != self.provider:
            self._set_provider(destination.provider)
            held = self._hold(job, self.provider) if self._hold is not None else None
            if held is not None:
                raise _Held(held)  # before any connection is opened
        began = time.perf_counter()
        try:
            return await self._connector.open(
                destination, self.policy, self.source, tls_sessions, need
            )
        finally:
            timing.connect = time.perf_counter() - began

    def _set_provider(self, provider: str) -> None:
        """The MX told us the provider: its policy applies, maybe its shared shaper."""
        self.provider = provider
        self.policy = self._cfg.policy_for(self.domain, provider)
        shaper = self._shapers.for_domain(self.domain, provider, self.source.address)
        if shaper is self.shaper:
            self.shaper.throttle.set_policy(self.policy)
            return
        # Our workers' slots move along; past the new cap they end at their next job.
        self.shaper.workers -= self._workers
        self.shaper.queues -= 1
        shaper.workers += self._workers
        shaper.queues += 1
        self.shaper.wake()
        self.shaper = shaper

    def _complete(self, job: Job, result: JobResult, started: float) -> None:
        now = time.time()
        result.seconds = time.perf_counter() - started
        for classified in result.results.values():
            if classified.outcome is Outcome.DEFERRED:
                self.last_error = result.cause or str(classified.reply)
                self.last_error_at = now
            if is_throttle_reply(classified.reply, self._patterns):
                change = self.throttle.on_throttle(now, classified.reply)
                if change is not None:
                    result.throttle.append(change)
                    self._shed_all(SHED_THROTTLED, change.suspended_until)
            elif classified.outcome is Outcome.DELIVERED:
                change = self.throttle.on_success(now)
                if change is not None:
                    result.throttle.append(change)
                    self.shaper.wake()  # ramped up: maybe a slot for a waiting domain
        self._finish(job, result)

    def _shed_all(self, reason: str, not_before: float) -> None:
        while self._jobs:
            self._finish(self._jobs.popleft(), JobResult(shed=reason, not_before=not_before))

    def _finish(self, job: Job, result: JobResult) -> None:
        if job.ended:
            return
        job.ended = True
        self._size -= 1
        if not result.provider or result.provider == OTHER:
            result.provider = self.provider
        self._done(job, result)


class _Held(Exception):
    """Raised by ``_connect`` when the job must be held once its provider is known."""

    def __init__(self, result: JobResult) -> None:
        super().__init__(result.shed)
        self.result = result
