"""The MTA-STS policy cache every deliverer worker and replica shares (RFC 8461 5.1).

Owns an in-memory map of domain -> :class:`~shared.wire.records.MtaStsPolicy`, filled from
the compacted ``postline.mta-sts`` at start (``Bus.read_table``), kept current by following
it, and written to by :meth:`PolicyCache.store` (publish, then keep). So a policy one replica
fetched serves every other, and a restart starts with every policy still cached: a network
attacker who blocks the policy host after a restart gains nothing (RFC 8461 10.1 rests on
the cache). When two replicas fetch the same domain, the later ``fetched_at`` wins wherever
the records arrive in either order. It does not fetch or decide anything
(``mtasts.py`` does).
"""

from __future__ import annotations

import asyncio
import logging

from shared.bus.base import Bus, BusMessage
from shared.bus.follow import follow_topic
from shared.errors import BusError, DecodeError
from shared.wire.records import MtaStsPolicy
from shared.wire.topics import MTA_STS

log = logging.getLogger(__name__)


class PolicyCache:
    """Cached policies by domain; without a bus (``None``) it is a process-local map."""

    def __init__(self, bus: Bus | None = None) -> None:
        self._bus = bus
        self._policies: dict[str, MtaStsPolicy] = {}

    def __len__(self) -> int:
        return len(self._policies)

    def get(self, domain: str) -> MtaStsPolicy | None:
        """The cached policy of ``domain`` (expired or not), or ``None``."""
        return self._policies.get(domain.lower().rstrip("."))

    def keep(self, policy: MtaStsPolicy) -> None:
        """Keep ``policy`` unless a newer fetch of its domain is already here."""
        domain = policy.domain.lower().rstrip(".")
        current = self._policies.get(domain)
        if current is None or current.fetched_at <= policy.fetched_at:
            self._policies[domain] = policy

    async def store(self, policy: MtaStsPolicy) -> None:
        """Keep ``policy`` and publish it (:meth:`publish`)."""
        self.keep(policy)
        await self.publish(policy)

    async def publish(self, policy: MtaStsPolicy) -> None:
        """Publish ``policy`` for the other replicas and the next start. A bus failure is
        logged, not raised: the policy still serves this process."""
        if self._bus is None:
            return
        try:
            await self._bus.publish([MTA_STS.out(policy)])
        except BusError as exc:
            log.warning(
                "MTA-STS policy not published", extra={"domain": policy.domain, "error": str(exc)}
            )

    async def load(self) -> None:
        """Fill the map from the topic's current state (before the first lookup)."""
        if self._bus is None:
            return
        for key, value in (await self._bus.read_table(MTA_STS.name)).items():
            self._apply(key, value)

    async def follow(self, stopping: asyncio.Event) -> None:
        """Apply the topic's records as they commit, until ``stopping`` (a supervised task)."""
        if self._bus is None:
            return
        await follow_topic(self._bus, MTA_STS.name, self._apply_message, stopping, log)

    def _apply_message(self, message: BusMessage) -> None:
        self._apply(message.key, message.value)

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:  # a tombstone: an operator removed the domain's policy
            self._policies.pop(key.decode("utf-8", "replace").lower(), None)
            return
        try:
            self.keep(MTA_STS.decode(value))
        except DecodeError as exc:
            # A record this version cannot read is skipped: the domain's policy is then
            # fetched again, which is what having no cache would do.
            log.warning("MTA-STS cache record skipped", extra={"error": str(exc)})
