"""What the deliverer decides about a Delivery before it enters a domain queue.

Owns: :class:`Admission`, shared by the lanes' engines (one per process): a paused sender's
mail is held (``hold.py``); otherwise the source address is chosen (``sources.py``), or, when
every address of the pool is out of warm-up allowance and the pool waits, the Delivery waits
for the next UTC day. Both are shed to a retry tier by the engine without an attempt (the
attempt count is unchanged, so a held message is not closer to a bounce, only to its
expiry). Also publishes the warm-up gauges and gives back the allowance of a Delivery shed
after it was counted.

Does not queue or send (``engine.py``, ``queue.py``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.deliverer.hold import hold_reason
from services.deliverer.metrics import DelivererMetrics, source_label
from services.deliverer.queue import SHED_PAUSED, SHED_WARMUP
from services.deliverer.sources import OS_SOURCE, Source, SourceSelector
from services.deliverer.warmup import Reservation, WarmupLedger
from shared.pools import PoolsConfig
from shared.tenants import TenantTable
from shared.wire.records import Delivery

Clock = Callable[[], float]


@dataclass(frozen=True)
class Verdict:
    """Admit from ``source`` (counted in ``reservation``), or shed for ``shed`` until
    ``not_before``."""

    source: Source = OS_SOURCE
    reservation: Reservation | None = None
    shed: str = ""  # SHED_PAUSED or SHED_WARMUP; "" = admitted
    not_before: float = 0.0


class Admission:
    """Holds paused senders' mail and picks source addresses (see the module docstring)."""

    def __init__(
        self,
        pools: PoolsConfig,
        tenants: TenantTable,
        ledger: WarmupLedger,
        metrics: DelivererMetrics,
        *,
        paused_hold: float,
        clock: Clock = time.time,
    ) -> None:
        self.clock = clock
        self._pools = pools
        self._tenants = tenants
        self._ledger = ledger
        self._metrics = metrics
        self._paused_hold = paused_hold
        self._selector = SourceSelector(pools, tenants, ledger)

    def decide(self, delivery: Delivery, provider: str) -> Verdict:
        """Hold, wait or admit ``delivery`` to ``provider`` (the destination's provider as
        last seen, ``other`` when not yet known)."""
        now = self.clock()
        held = hold_reason(delivery, self._tenants)
        if held:
            self._metrics.held.labels(held).inc()
            return Verdict(shed=SHED_PAUSED, not_before=now + self._paused_hold)
        selection = self._selector.select(delivery, provider, now)
        if selection.wait_until:
            self._metrics.held.labels(SHED_WARMUP).inc()
            return Verdict(shed=SHED_WARMUP, not_before=selection.wait_until)
        if selection.overflowed:
            self._metrics.warmup_overflow.labels(selection.pool).inc()
        return Verdict(selection.source, selection.reservation)

    def give_back(self, reservation: Reservation | None) -> None:
        """A counted Delivery was shed before its attempt: it did not use the allowance."""
        if reservation is not None:
            self._ledger.give_back(reservation)

    def observe(self) -> None:
        """Set the warm-up gauges of every configured warming address (the config bounds
        the ``source`` label)."""
        now = self.clock()
        warming = self._pools.warming()
        for address, provider in self._ledger.seen(now):
            if address not in warming:
                continue
            allowance = self._ledger.allowance(address, provider, now)
            label = source_label(address)
            if allowance is None:  # warmed up: no allowance any more, no series
                for gauge in (self._metrics.warmup_left, self._metrics.warmup_sent):
                    with contextlib.suppress(KeyError):
                        gauge.remove(label, provider)
                continue
            self._metrics.warmup_left.labels(label, provider).set(allowance.left)
            self._metrics.warmup_sent.labels(label, provider).set(allowance.sent)
