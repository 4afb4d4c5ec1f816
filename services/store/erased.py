"""Events about an erased address are not written back into the store.

``postline gdpr erase`` deletes an address's rows, but events from before the erasure can
still arrive: the ones the stage had not read yet (its lag), and all of them again when a
store is rebuilt from the start of ``postline.events`` (14 days by default). Each is dropped
here when its recipient or sender hashes (``shared.addresshash``, the key of ``[secrets]
gdpr_hash_key_file``) to an erasure recorded in the store and it happened no later than that
erasure (and, for an erasure limited to a tenant, belongs to that tenant). Events after the
erasure are new processing (a suppressed attempt to mail the address) and are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from shared.addresshash import address_hash
from shared.store.db import Executor
from shared.wire.records import Event


@dataclass(slots=True)
class _Erasure:
    at: float
    tenants: set[str] = field(default_factory=set)  # "" = every tenant


@dataclass(slots=True)
class ErasedAddresses:
    """The store's erasures, read as they are added; ``load_key`` gives the hash key, or
    ``None`` while there is none (nothing can have been erased then)."""

    load_key: Callable[[], bytes | None]
    key: bytes | None = None
    last_id: int = 0
    erased: dict[str, _Erasure] = field(default_factory=dict)
    #: Erasures seen without a key to match them with (logged by the caller).
    unmatched: int = 0

    async def refresh(self, db: Executor) -> None:
        """Read erasures recorded since the last call (one indexed query)."""
        rows = await db.fetch(
            "SELECT id, at, tenant, address_hash FROM erasures WHERE id > $1 ORDER BY id",
            self.last_id,
        )
        for row in rows:
            self.last_id = int(row["id"])
            entry = self.erased.setdefault(row["address_hash"], _Erasure(at=float(row["at"])))
            entry.at = max(entry.at, float(row["at"]))
            entry.tenants.add(row["tenant"] or "")
        if self.erased and self.key is None:
            self.key = self.load_key()
            self.unmatched = 0 if self.key is not None else len(self.erased)

    def erased_event(self, event: Event) -> bool:
        """Whether ``event`` is about an erased address, from before its erasure."""
        if not self.erased or self.key is None:
            return False
        for address in (event.recipient, event.sender):
            if not address:
                continue
            entry = self.erased.get(address_hash(self.key, address))
            if entry is None or event.at > entry.at:
                continue
            # An event naming no tenant (an asynchronous bounce) may be any tenant's.
            if "" in entry.tenants or not event.tenant or event.tenant in entry.tenants:
                return True
        return False

    def keep(self, events: Sequence[tuple[bytes, Event]]) -> list[tuple[bytes, Event]]:
        """``events`` without those about an erased address."""
        if not self.erased or self.key is None:
            return list(events)
        return [item for item in events if not self.erased_event(item[1])]
