"""The live copy of ``postline.suppressions`` that ingest and the signer check recipients against.

Owns an in-memory set of suppression keys (``shared.wire.topics.suppression_key``), filled from
``Bus.read_table`` at start and kept current by following the compacted topic. It does not
decide what happens to a suppressed recipient: ingest refuses or drops it
(``services/ingest/policy/rcpt_to.py``), the signer drops it with an event. Any value under a
key suppresses, even one this version cannot decode: never mailing is the safe mistake.

Start-up order: the snapshot from ``read_table`` makes the table complete before the first
batch; the follower then replays the topic from its beginning (so nothing published between
the snapshot and the start of the follower is missed). During that replay an address that
was added and later removed can read as suppressed for the moment between the two replayed
records: we accept that short over-suppression rather than ever miss a suppression.
"""

from __future__ import annotations

import asyncio
import logging

from shared.bus.base import Bus, BusMessage
from shared.bus.follow import follow_topic
from shared.wire.topics import SUPPRESSIONS, suppression_key


class SuppressionTable:
    """Suppressed addresses, global (``address``) or per sender domain (``scope|address``)."""

    def __init__(self) -> None:
        self._keys: set[str] = set()

    def __len__(self) -> int:
        return len(self._keys)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the topic: a value adds its key, a tombstone removes it."""
        if key is None:
            return
        name = key.decode("utf-8", "replace").lower()
        if value is None:
            self._keys.discard(name)
        else:
            self._keys.add(name)

    def is_suppressed(self, address: str, scope: str = "") -> bool:
        """Whether ``address`` is suppressed for everyone or for sender domain ``scope``."""
        if suppression_key(address) in self._keys:
            return True
        return bool(scope) and suppression_key(address, scope) in self._keys

    async def load(self, bus: Bus) -> None:
        """Replace the table with the topic's current state."""
        table = await bus.read_table(SUPPRESSIONS.name)
        self._keys = {key.decode("utf-8", "replace").lower() for key in table}

    async def follow(self, bus: Bus, stopping: asyncio.Event, log: logging.Logger) -> None:
        """Apply every record of the topic as it commits, until ``stopping``; a bus failure
        restarts the follower after a pause (replaying is harmless: records are states)."""
        await follow_topic(bus, SUPPRESSIONS.name, self._apply_message, stopping, log)

    def _apply_message(self, message: BusMessage) -> None:
        self.apply(message.key, message.value)
