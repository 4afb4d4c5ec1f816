"""Limits shared by every domain that sends through one destination key.

Owns: :class:`Shaper` (the connection slots, the pacing clock and the :class:`Throttle` of one
key) and :class:`Shapers` (which key a domain uses). A domain with its own policy in
``[deliverer.domains]``, or whose provider has none in ``[deliverer.providers]``, is shaped
alone (key ``domain:<name>``); domains whose MX belongs to a provider with a policy share the
provider's shaper (key ``provider:<name>``): its ``max_connections`` and
``messages_per_minute`` count across all of them, and a 421 from any of them throttles them
all, because the provider counts our traffic per sending IP, not per recipient domain. Limits
are per deliverer process. Does not send or queue anything (``queue.py``).

Lanes. The transactional and the bulk lane (``lanes.py``) each have their own domain queues,
but one :class:`Shapers` serves both: connection slots, pacing and throttle state belong to
the destination, which counts connections and messages per sending IP whatever the lane.
Within a shaper, transactional work comes first: a transactional queue waiting for a slot is
served before any bulk one (:meth:`Shaper.wait` with ``urgent``), a bulk worker hands its
slot over after its current transaction when one waits (:attr:`Shaper.priority_waiting`),
not only at its next reconnect, and a transactional send takes the next pacing slot before
bulk sends already waiting for theirs (:class:`Pacer`). So a bulk backlog to a destination
delays transactional mail by at most a bulk transaction already under way (its pacing wait
included), never by the backlog; the price is that a destination kept busy by transactional
mail alone holds bulk back (strict priority). KumoMTA and PowerMTA likewise keep bulk and
transactional in separate queues that share the destination's egress limits.

Sources. With ``[pools]``, a domain queue sends from one local address (``sources.py``), and
the key carries it (``provider:<name>|<address>``, ``domain:<name>|<address>``): each source
address has its own slots, pacing and throttle with a destination, since providers count
connections and rates, and throttle, per sending IP (Gmail's and Microsoft's sender
guidelines; KumoMTA's egress path is source x destination for the same reason). Without a
pool (the OS or ``deliverer.source_pools`` picks the address) the key has no address.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable

from services.deliverer.config import DelivererConfig
from services.deliverer.throttle import Throttle
from shared.providers import OTHER

Kick = Callable[[], None]


class Pacer:
    """Spaces sends to a rate (messages per minute; 0 = unlimited), urgent callers first.

    A caller that finds the clock free goes at once; the others wait in two queues, and each
    pacing slot goes to the longest-waiting urgent caller, else to the longest-waiting other
    one. The rate is read at every slot, so a throttle's cut or ramp applies at once.
    """

    def __init__(self, rate: Callable[[], float]) -> None:
        self._rate = rate
        self._next = 0.0  # loop time of the next free slot
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._others: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot."""
        return len(self._urgent) + len(self._others)

    async def wait(self, *, urgent: bool) -> None:
        """Return when this caller may send."""
        rate = self._rate()
        if rate <= 0:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now >= self._next and not self.waiting:
            self._next = now + 60.0 / rate
            return
        turn: asyncio.Future[None] = loop.create_future()
        (self._urgent if urgent else self._others).append(turn)
        self._arm(loop)
        try:
            await turn
        except asyncio.CancelledError:
            waiting = self._urgent if urgent else self._others
            if turn in waiting:
                waiting.remove(turn)
            raise

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is None and self.waiting:
            self._timer = loop.call_at(self._next, self._release, loop)

    def _release(self, loop: asyncio.AbstractEventLoop) -> None:
        """A slot is due: give it to the first urgent caller, else the first other one."""
        self._timer = None
        rate = self._rate()
        while self.waiting:
            turn = (self._urgent or self._others).popleft()
            if turn.done():  # cancelled while waiting
                continue
            turn.set_result(None)
            if rate > 0:  # unlimited now (a policy change): everyone waiting goes
                self._next = loop.time() + 60.0 / rate
                break
        self._arm(loop)


class Shaper:
    """Connection slots, pacing and throttle state of one destination key."""

    def __init__(self, key: str, throttle: Throttle) -> None:
        self.key = key
        self.throttle = throttle
        self.workers = 0  # connection slots in use (one worker holds one connection)
        self.queues = 0  # domain queues (of either lane) using this shaper now
        self.throttle_counted = False  # in the throttled-destinations gauge (engine.py)
        self._pacer = Pacer(lambda: self.throttle.rate)
        self._urgent: deque[Kick] = deque()  # transactional queues waiting for a slot
        self._waiting: deque[Kick] = deque()  # bulk queues waiting for a slot
        self._idle: set[asyncio.Event] = set()

    @property
    def contended(self) -> bool:
        """Whether some domain (of either lane) waits for a slot."""
        return bool(self._urgent or self._waiting)

    @property
    def priority_waiting(self) -> bool:
        """Whether a transactional domain waits for a slot (bulk workers hand theirs over)."""
        return bool(self._urgent)

    @property
    def over_cap(self) -> bool:
        """More slots in use than the (throttle-adjusted) concurrency allows."""
        return self.workers > self.throttle.concurrency

    def acquire(self) -> bool:
        """Take a connection slot if one is free."""
        if self.workers < self.throttle.concurrency:
            self.workers += 1
            return True
        return False

    def release(self) -> None:
        """Give a slot back and let the longest-waiting domain take it."""
        self.workers -= 1
        self.wake()

    def wait(self, kick: Kick, *, urgent: bool = False) -> None:
        """Call ``kick`` when a slot frees, before any bulk waiter if ``urgent``
        (transactional); idle workers elsewhere are told to let theirs go."""
        waiting = self._urgent if urgent else self._waiting
        if kick not in waiting:
            waiting.append(kick)
        for event in self._idle:
            event.set()

    def wake(self) -> None:
        """Hand free slots to waiting domains, transactional ones first (after a release or
        a ramp-up)."""
        while self.contended and self.workers < self.throttle.concurrency:
            (self._urgent or self._waiting).popleft()()

    def idle_on(self, event: asyncio.Event, idle: bool) -> None:
        """Register (or not) an idle worker's wake-up event, so contention can end its wait."""
        if idle:
            self._idle.add(event)
        else:
            self._idle.discard(event)

    async def pace(self, *, urgent: bool = True) -> None:
        """Space sends to the current rate (messages per minute; 0 = unlimited); an
        ``urgent`` (transactional) send takes the next slot before bulk ones waiting."""
        await self._pacer.wait(urgent=urgent)

    @property
    def unused(self) -> bool:
        """No queue, no slot in use, nobody waiting, not throttled: it may be dropped (a
        queue of the other lane may still hold it while this lane's went idle)."""
        return (
            self.queues == 0
            and self.workers == 0
            and not self.contended
            and not self._pacer.waiting
            and not self.throttle.throttled
        )


class Shapers:
    """The shapers of one deliverer process, created on first use."""

    def __init__(self, cfg: DelivererConfig, remember: int = 10000) -> None:
        self._cfg = cfg
        self._shapers: dict[str, Shaper] = {}
        # The provider each recent domain resolved to, so a domain's queue, created again
        # after it went idle, starts under its provider's limits (bounded, oldest first out).
        self._providers: OrderedDict[str, str] = OrderedDict()
        self._remember = remember

    def provider_of(self, domain: str) -> str:
        """The provider ``domain`` last resolved to (``"other"`` when unknown)."""
        return self._providers.get(domain.lower(), OTHER)

    def for_domain(self, domain: str, provider: str, source: str = "") -> Shaper:
        """The shaper ``domain`` uses, from local address ``source`` ("" = not bound to
        one), now that its provider is known (see the module doc)."""
        if provider != OTHER:
            self._providers[domain.lower()] = provider
            self._providers.move_to_end(domain.lower())
            while len(self._providers) > self._remember:
                self._providers.popitem(last=False)
        shared = provider in self._cfg.providers and domain.lower() not in self._cfg.domains
        key = f"provider:{provider}" if shared else f"domain:{domain.lower()}"
        if source:
            key += f"|{source}"
        shaper = self._shapers.get(key)
        if shaper is None:
            policy = self._cfg.policy_for("" if shared else domain, provider)
            shaper = Shaper(key, Throttle(self._cfg.throttling, policy))
            self._shapers[key] = shaper
        return shaper

    def keyed(self, kind: str, name: str) -> list[Shaper]:
        """The shapers of ``kind`` ("domain" or "provider") ``name``, from every source."""
        prefix = f"{kind}:{name.lower()}"
        return [s for k, s in self._shapers.items() if k == prefix or k.startswith(prefix + "|")]

    def drop_unused(self) -> None:
        """Forget per-domain shapers nobody uses (provider shapers are few: kept)."""
        for key in [k for k, s in self._shapers.items() if k.startswith("domain:") and s.unused]:
            del self._shapers[key]
