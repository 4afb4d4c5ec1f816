"""Which local address a Delivery is sent from: its pool, then an address of the pool.

Owns: :class:`SourceSelector`, called once per Delivery at admission.

The pool (``[pools]`` in ``shared.pools``), first named wins: the sending domain's
``ip_pool`` (the domain of the original envelope sender, in its tenant's record); for bulk
mail the tenant's ``settings.bulk_ip_pool``, then ``[pools] bulk``; the tenant's ``ip_pool``;
``[pools] default``. No pool: the OS picks the address, or ``deliverer.source_pools`` through
the policy's ``source_pool`` as before pools existed (``pool.py``). DSNs use ``default``: they
are the installation's mail, not the tenant's. A name that is not a configured pool is skipped
(and logged once): the tenant record and the config are changed apart.

Within the pool, nginx's smooth weighted round robin (``ngx_http_upstream_round_robin.c``:
each pick adds every candidate's weight to its current weight, takes the largest and subtracts
the total from it), over the addresses that may still send to the destination's provider
today: an address not marked ``warmup`` always may; a warming one while its allowance for the
provider is not used up (``warmup.py``; an address with any allowance left takes the whole
Delivery, so a day ends at most one Delivery's recipients past it). The recipients are counted
against the chosen address at once. When no address of the pool may send, the pool's
``over_allowance`` decides: ``overflow`` tries the pool it names (and on, a cycle ends the
chain), ``wait`` holds the Delivery until the next UTC midnight, when the allowances renew.

Does not open connections (``pool.py``) nor count anything itself (``warmup.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.deliverer.hold import sending_domain_of
from services.deliverer.warmup import Reservation, WarmupLedger, next_midnight
from shared.pools import Pool, PoolAddress, PoolsConfig
from shared.tenants import TenantTable
from shared.wire.records import Delivery


@dataclass(frozen=True)
class Source:
    """A local address to send from and the EHLO name that goes with it."""

    address: str = ""  # "" = the OS (or deliverer.source_pools) picks
    ehlo_name: str = ""  # "" = deliverer.ehlo_name
    pool: str = ""  # the pool it was taken from ("" = none)


#: No pool applies: the OS picks the address (today's behaviour without ``[pools]``).
OS_SOURCE = Source()


@dataclass(frozen=True)
class Selection:
    """The outcome of :meth:`SourceSelector.select`."""

    source: Source = OS_SOURCE
    reservation: Reservation | None = None  # recipients counted against a warming address
    wait_until: float = 0.0  # > 0: every address is out of allowance; not before this
    pool: str = ""  # the pool assigned (where the chain began)
    overflowed: bool = False  # sent from another pool: the assigned one was out of allowance


class SourceSelector:
    """Picks a Delivery's source address (see the module docstring)."""

    def __init__(
        self,
        pools: PoolsConfig,
        tenants: TenantTable,
        ledger: WarmupLedger,
        log: logging.Logger | None = None,
    ) -> None:
        self._pools = pools
        self._tenants = tenants
        self._ledger = ledger
        self._log = log or logging.getLogger("postline.deliverer.sources")
        self._current: dict[str, dict[str, int]] = {}  # pool -> address -> current weight
        self._unknown: set[str] = set()  # pool names already logged as unknown

    def pool_of(self, delivery: Delivery) -> str:
        """The name of the pool ``delivery`` is sent from ("" = none)."""
        candidates: list[str] = []
        if not delivery.is_dsn:
            tenant = self._tenants.get(delivery.tenant)
            domain = sending_domain_of(tenant, delivery.sender)
            candidates.append(domain.ip_pool if domain is not None else "")
            if delivery.bulk:
                candidates.append(tenant.settings.bulk_ip_pool if tenant is not None else "")
                candidates.append(self._pools.bulk)
            candidates.append(tenant.ip_pool if tenant is not None else "")
        candidates.append(self._pools.default)
        for name in candidates:
            if name in self._pools.pool:
                return name
            if name and name not in self._unknown:
                self._unknown.add(name)
                self._log.warning(
                    "unknown source pool skipped", extra={"pool": name, "tenant": delivery.tenant}
                )
        return ""

    def select(self, delivery: Delivery, provider: str, now: float) -> Selection:
        """The source for ``delivery`` to ``provider`` at ``now`` (counted when warming)."""
        name = self.pool_of(delivery)
        if not name:
            return Selection()
        return self._pick(name, provider, max(1, len(delivery.rcpt_to)), now, [])

    def _pick(
        self, name: str, provider: str, count: int, now: float, visited: list[str]
    ) -> Selection:
        pool = self._pools.pool[name]
        visited.append(name)
        limited: set[str] = set()
        candidates: list[PoolAddress] = []
        for entry in pool.addresses:
            allowance = (
                self._ledger.allowance(entry.address, provider, now) if entry.warmup else None
            )
            if allowance is None:
                candidates.append(entry)
            elif allowance.left > 0:
                candidates.append(entry)
                limited.add(entry.address)
        if candidates:
            entry = self._smooth(name, candidates)
            source = Source(entry.address, entry.ehlo_name, name)
            reservation = (
                self._ledger.take(entry.address, provider, count, now)
                if entry.address in limited
                else None
            )
            return Selection(source, reservation, pool=visited[0], overflowed=len(visited) > 1)
        if _overflows(pool) and pool.overflow not in visited:
            return self._pick(pool.overflow, provider, count, now, visited)
        # "wait", or an overflow chain that came back to a pool already out of allowance.
        return Selection(wait_until=next_midnight(now), pool=visited[0])

    def _smooth(self, name: str, candidates: list[PoolAddress]) -> PoolAddress:
        """nginx's smooth weighted round robin over ``candidates`` (weights 5,1,1 give
        a a b a c a a, not a a a a a b c)."""
        current = self._current.setdefault(name, {})
        total = 0
        best: PoolAddress | None = None
        for entry in candidates:
            weight = current.get(entry.address, 0) + entry.weight
            current[entry.address] = weight
            total += entry.weight
            if best is None or weight > current[best.address]:
                best = entry
        assert best is not None  # candidates is never empty here
        current[best.address] -= total
        return best


def _overflows(pool: Pool) -> bool:
    return pool.over_allowance == "overflow" and bool(pool.overflow)
