"""Per-endpoint queues: no endpoint ever waits behind another.

Every endpoint (tenant, endpoint id) has its own :class:`EndpointQueue`: a FIFO of jobs
(one event each), up to ``concurrency`` requests at once, each carrying up to the endpoint's
``batch`` events that are queued when it starts, and its own circuit breaker
(``breaker.py``). A job always ends with a call of its ``done(outcome, attempted)``:

- after its request: the receiver's outcome (``attempted`` true);
- without a request (``attempted`` false) when the queue holds ``max_queued`` jobs that
  would wait longer than ``max_queue_wait`` (``queue_full``), when the circuit is open
  (``circuit_open``) or when the stage drains (``shed``): the caller sends the event to a
  retry tier at once.

So a hanging receiver holds at most ``max_queued`` events, for at most ``failure_threshold
/ concurrency`` request timeouts (then its circuit opens and they go to the retry tiers),
and a slow one never more than it answers within ``max_queue_wait``: the loops' window
(``max_in_flight``) is left to the endpoints that answer, while a fast receiver takes a
burst larger than ``max_queued`` without a detour through the tiers.

Owns the queues, the requests' signing and the breaker's bookkeeping; not what happens to a
failed event (``retry.py``) nor which endpoints an event goes to (``endpoints.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from services.webhooks.breaker import CLOSED, Breaker
from services.webhooks.client import Outcome, WebhookClient
from services.webhooks.config import WebhooksConfig
from services.webhooks.endpoints import Endpoints, Target
from services.webhooks.metrics import WebhooksMetrics
from services.webhooks.payload import Item, body
from services.webhooks.signing import headers
from shared.errors import SealError

log = logging.getLogger("postline.webhooks")

#: A request out longer than this makes its age count in the queue's wait estimate.
SLOW_REQUEST = 1.0
#: Ends a job: the outcome, and whether a request was made.
Done = Callable[[Outcome, bool], None]
#: Starts a short-lived supervised task (``StageContext.spawn`` with daemon=False).
Spawn = Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]
#: Called when an endpoint failed long enough to be paused.
OnPause = Callable[[Target, Breaker], None]


@dataclass
class Job:
    """One event for one endpoint."""

    item: Item
    done: Done


class EndpointQueue:
    """One endpoint's queue, request slots and circuit (see the module docstring)."""

    def __init__(self, dispatcher: Dispatcher, target: Target) -> None:
        cfg = dispatcher.cfg
        self.dispatcher = dispatcher
        self.target = target
        self.jobs: deque[Job] = deque()
        self.running = 0
        self.started: dict[int, float] = {}  # requests out: a number -> when it started
        self.mean_seconds = 0.0  # moving mean of request times (none yet)
        self._numbers = 0
        self.breaker = Breaker(
            threshold=cfg.failure_threshold,
            open_for=float(cfg.circuit_open),
            pause_failures=cfg.pause_after_failures,
            pause_after=float(cfg.pause_after),
        )

    @property
    def idle(self) -> bool:
        """Nothing queued or in flight, and the circuit closed: the queue may be dropped."""
        return not self.jobs and not self.running and self.breaker.state(time.time()) == CLOSED

    def wait_estimate(self, now: float) -> float:
        """Seconds the queued jobs would wait: each round of requests takes the mean request
        time, or the age of the oldest request still out when that passed a second (a
        hanging receiver has no mean yet; below a second the age says more about this
        process, busy admitting a fetch, than about the receiver)."""
        cfg = self.dispatcher.cfg
        per_request = self.mean_seconds
        if self.started:
            oldest = now - min(self.started.values())
            if oldest > SLOW_REQUEST:
                per_request = max(per_request, oldest)
        rounds = len(self.jobs) / (cfg.concurrency * max(1, self.target.endpoint.batch))
        return rounds * per_request

    def submit(self, job: Job) -> None:
        """Queue ``job``, or end it at once when the queue is full: ``max_queued`` jobs that
        would wait longer than ``max_queue_wait`` (a fast receiver takes a burst at once; a
        slow or hanging one never holds more than that)."""
        dispatcher = self.dispatcher
        cfg = dispatcher.cfg
        if len(self.jobs) >= cfg.max_queued and self.wait_estimate(time.time()) > float(
            cfg.max_queue_wait
        ):
            dispatcher.skip(job, "queue_full")
            return
        self.jobs.append(job)
        self.kick()

    def kick(self) -> None:
        """Start requests while there are free slots and jobs; end the jobs at once while
        the circuit is open."""
        dispatcher = self.dispatcher
        while self.jobs and self.running < dispatcher.cfg.concurrency:
            if not self.breaker.allow(time.time()):
                while self.jobs:
                    dispatcher.skip(self.jobs.popleft(), "circuit_open")
                return
            size = max(1, self.target.endpoint.batch)
            batch = [self.jobs.popleft() for _ in range(min(size, len(self.jobs)))]
            self.running += 1
            dispatcher.started(
                dispatcher.spawn(self._request(batch), f"webhook:{self.target.endpoint.id}")
            )

    async def _request(self, batch: list[Job]) -> None:
        dispatcher = self.dispatcher
        self._numbers += 1
        number = self._numbers
        self.started[number] = time.time()
        try:
            async with dispatcher.activity():
                outcome = await dispatcher.send(self.target, [job.item for job in batch])
        finally:
            self.running -= 1
            began = self.started.pop(number)
        now = time.time()
        # Exponential moving mean over about the last ten requests.
        self.mean_seconds += (now - began - self.mean_seconds) * 0.1
        if outcome.ok:
            self.breaker.succeeded()
        else:
            self.breaker.failed(now)
            if self.breaker.should_pause(now):
                dispatcher.on_pause(self.target, self.breaker)
        for job in batch:
            dispatcher.ended(job, outcome)
        self.kick()


class Dispatcher:
    """Every endpoint's queue, the client and the signing (see the module docstring)."""

    def __init__(
        self,
        cfg: WebhooksConfig,
        client: WebhookClient,
        endpoints: Endpoints,
        metrics: WebhooksMetrics,
        *,
        spawn: Spawn,
        activity: Callable[[], AbstractAsyncContextManager[None]],
        on_pause: OnPause,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.client = client
        self.endpoints = endpoints
        self.metrics = metrics
        self.spawn = spawn
        self.activity = activity
        self.on_pause = on_pause
        self.clock = clock
        self.queues: dict[tuple[str, str], EndpointQueue] = {}
        self.draining = False
        self.pending = 0  # jobs submitted and not ended, every endpoint
        self._requests: set[asyncio.Task[None]] = set()

    def started(self, task: asyncio.Task[None]) -> None:
        """Keep a request's task until it ends (the drain waits for them)."""
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    def submit(self, target: Target, item: Item, done: Done) -> None:
        """Send ``item`` to ``target`` through its queue; ``done`` is called exactly once."""
        job = Job(item, done)
        self.pending += 1
        self.metrics.in_flight.inc()
        if self.draining:
            self.skip(job, "shed")
            return
        queue = self.queues.get(target.key)
        if queue is None:
            queue = self.queues[target.key] = EndpointQueue(self, target)
        queue.target = target  # the endpoint as it is now (URL, batch, secret)
        queue.submit(job)

    def skip(self, job: Job, reason: str) -> None:
        """End ``job`` without a request."""
        self.metrics.deferred.labels(reason).inc()
        self.pending -= 1
        self.metrics.in_flight.dec()
        job.done(Outcome(reason, 0, reason.replace("_", " ")), False)

    def ended(self, job: Job, outcome: Outcome) -> None:
        """End ``job`` with its request's outcome."""
        self.metrics.deliveries.labels(outcome.result).inc()
        self.pending -= 1
        self.metrics.in_flight.dec()
        if outcome.ok:
            self.metrics.latency.observe(max(0.0, self.clock() - job.item.event_at))
        job.done(outcome, True)

    async def send(self, target: Target, items: list[Item]) -> Outcome:
        """One signed request carrying ``items`` to ``target``."""
        try:
            key = self.endpoints.key(target)
        except (SealError, ValueError) as exc:
            log.error(
                "webhook secret does not open",
                extra={"tenant": target.tenant, "endpoint": target.endpoint.id, "error": str(exc)},
            )
            return Outcome("secret", 0, str(exc))
        msg_id, data = body(items, target.endpoint.batch > 1)
        started = time.monotonic()
        outcome = await self.client.post(
            target.endpoint.url, data, headers(key, msg_id, int(self.clock()), data)
        )
        self.metrics.request_seconds.observe(time.monotonic() - started)
        if not outcome.ok:
            log.info(
                "webhook not acknowledged",
                extra={
                    "tenant": target.tenant,
                    "endpoint": target.endpoint.id,
                    "result": outcome.result,
                    "error": outcome.error,
                    "events": len(items),
                },
            )
        return outcome

    def housekeeping(self) -> None:
        """Drop idle queues; the open circuits gauge."""
        now = time.time()
        for key in [k for k, q in self.queues.items() if q.idle]:
            del self.queues[key]
        self.metrics.circuits_open.set(
            sum(1 for q in self.queues.values() if q.breaker.state(now) != CLOSED)
        )

    async def drain(self, timeout: float) -> None:
        """Stop taking jobs, end the queued ones without a request, wait for the requests
        in flight (at most ``timeout`` seconds)."""
        self.draining = True
        for queue in self.queues.values():
            while queue.jobs:
                self.skip(queue.jobs.popleft(), "shed")
        if self._requests:
            await asyncio.wait(set(self._requests), timeout=timeout)
