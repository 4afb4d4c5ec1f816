"""The live suppression table: ``postline.suppressions`` read as a table, then followed.

At start the whole compacted topic is read (``Bus.read_table``) so the stage is ready only
with a complete list; then the topic is followed so additions and tombstones from the
bouncer or the admin CLI apply within moments. Keys are ``shared.topics.suppression_key``:
the address for a global entry, ``<sender domain>|<address>`` for a scoped unsubscribe.
This module does not decide what happens to a suppressed recipient (``policy/rcpt_to.py``).
"""

from __future__ import annotations

import logging

from shared.bus.base import Bus, BusMessage
from shared.errors import BusError, DecodeError
from shared.records import Suppression
from shared.topics import SUPPRESSIONS, suppression_key


class SuppressionTable:
    """Suppressed addresses by key, kept current from the bus."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._entries: dict[str, Suppression] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, address: str, sender_domain: str = "") -> Suppression | None:
        """The entry suppressing ``address`` globally or for ``sender_domain``, if any."""
        found = self._entries.get(suppression_key(address))
        if found is None and sender_domain:
            found = self._entries.get(suppression_key(address, sender_domain))
        return found

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the topic (``None`` value: a tombstone removes the key)."""
        if key is None:
            return
        name = key.decode("utf-8", errors="replace")
        if value is None:
            self._entries.pop(name, None)
            return
        try:
            self._entries[name] = SUPPRESSIONS.decode(value)
        except DecodeError as exc:
            # A record we cannot read must not stop the table; the signer checks again.
            self.log.warning("unreadable suppression record", extra={"error": str(exc)})

    async def load(self, bus: Bus) -> None:
        """Read the current table from the bus (replacing what is held)."""
        table = await bus.read_table(SUPPRESSIONS.name)
        self._entries.clear()
        for key, value in table.items():
            self.apply(key, value)

    async def follow(self, bus: Bus) -> None:
        """Apply every record of the topic as it commits, until cancelled or the bus closes."""
        try:
            message: BusMessage
            async for message in bus.follow(SUPPRESSIONS.name, from_beginning=True):
                self.apply(message.key, message.value)
        except BusError as exc:
            self.log.error("suppression table stopped following", extra={"error": str(exc)})
