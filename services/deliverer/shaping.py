"""Limits shared by every domain that sends through one destination key.

Owns: :class:`Shaper` (the connection slots, the pacing clock and the :class:`Throttle` of one
key) and :class:`Shapers` (which key a domain uses). A domain with its own policy in
``[deliverer.domains]``, or whose provider has none in ``[deliverer.providers]``, is shaped
alone (key ``domain:<name>``); domains whose MX belongs to a provider with a policy share the
provider's shaper (key ``provider:<name>``): its ``max_connections`` and
``messages_per_minute`` count across all of them, and a 421 from any of them throttles them
all, because the provider counts our traffic per sending IP, not per recipient domain. Limits
are per deliverer process. Does not send or queue anything (``queue.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from services.deliverer.config import DelivererConfig
from services.deliverer.throttle import Throttle
from shared.providers import OTHER

Kick = Callable[[], None]


class Shaper:
    """Connection slots, pacing and throttle state of one destination key."""

    def __init__(self, key: str, throttle: Throttle) -> None:
        self.key = key
        self.throttle = throttle
        self.workers = 0  # connection slots in use (one worker holds one connection)
        self._next_slot = 0.0
        self._waiting: deque[Kick] = deque()
        self._idle: set[asyncio.Event] = set()

    @property
    def contended(self) -> bool:
        """Whether some domain waits for a slot."""
        return bool(self._waiting)

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

    def wait(self, kick: Kick) -> None:
        """Call ``kick`` when a slot frees; idle workers elsewhere are told to let theirs go."""
        if kick not in self._waiting:
            self._waiting.append(kick)
        for event in self._idle:
            event.set()

    def wake(self) -> None:
        """Hand free slots to waiting domains (after a release or a ramp-up)."""
        while self._waiting and self.workers < self.throttle.concurrency:
            self._waiting.popleft()()

    def idle_on(self, event: asyncio.Event, idle: bool) -> None:
        """Register (or not) an idle worker's wake-up event, so contention can end its wait."""
        if idle:
            self._idle.add(event)
        else:
            self._idle.discard(event)

    async def pace(self) -> None:
        """Space sends to the current rate (messages per minute; 0 = unlimited)."""
        rate = self.throttle.rate
        if rate <= 0:
            return
        now = time.monotonic()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 60.0 / rate
        if slot > now:
            await asyncio.sleep(slot - now)

    @property
    def unused(self) -> bool:
        """No slot in use, nobody waiting, not throttled: the shaper may be dropped."""
        return self.workers == 0 and not self._waiting and not self.throttle.throttled


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

    def for_domain(self, domain: str, provider: str) -> Shaper:
        """The shaper ``domain`` uses now that its provider is known (see the module doc)."""
        if provider != OTHER:
            self._providers[domain.lower()] = provider
            self._providers.move_to_end(domain.lower())
            while len(self._providers) > self._remember:
                self._providers.popitem(last=False)
        shared = provider in self._cfg.providers and domain.lower() not in self._cfg.domains
        key = f"provider:{provider}" if shared else f"domain:{domain.lower()}"
        shaper = self._shapers.get(key)
        if shaper is None:
            policy = self._cfg.policy_for("" if shared else domain, provider)
            shaper = Shaper(key, Throttle(self._cfg.throttling, policy))
            self._shapers[key] = shaper
        return shaper

    def drop_unused(self) -> None:
        """Forget per-domain shapers nobody uses (provider shapers are few: kept)."""
        for key in [k for k, s in self._shapers.items() if k.startswith("domain:") and s.unused]:
            del self._shapers[key]
