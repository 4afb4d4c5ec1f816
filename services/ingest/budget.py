"""The process-wide budget of message bytes held by ingest's SMTP sessions, and the buffer
that holds one message's bytes against it.

Every session's message bytes (DATA lines, BDAT chunks) go into a :class:`BodyBuffer`, which
counts them against one :class:`BodyBudget` per process (``ingest.limits.max_buffered_bytes``)
from the first byte received until the hand-off to the bus has returned. A body that would
take the total over the budget is not stored: the session reads and drops the rest of it
and answers ``452 4.3.1`` (RFC 1870 6.1 and 6.3: a server temporarily short of room for a
message answers 452; RFC 3463 4.3.1 "mail system full" is a temporary condition), so the
client retries later and nothing is lost, while the process's memory stays bounded however
many clients send at once (issue 11: 40 unauthenticated BDAT chunks of 25 MiB took ingest
from 480 MB to 1.7 GB).

The per-message limit (``limits.max_message_size``, 552) is the session's business, not
this module's; so is deciding when to read and when to drop.
"""

from __future__ import annotations

from prometheus_client import Gauge

from services.ingest.replies import Reply

#: RFC 1870 6.1/6.3 (452 when temporarily short of room for a message) with RFC 3463 4.3.1
#: ("mail system full", temporary): the client keeps the message and retries later. Chosen
#: over ``421 4.3.2``, which would also close the session of a client that did nothing wrong.
NO_ROOM = Reply(code=452, enhanced="4.3.1", text="Insufficient system storage, try again later")
#: Bytes taken from the budget at a time while a DATA block grows (fewer, larger steps).
STEP = 64 * 1024


class BodyBudget:
    """Bytes of message data held in memory by all sessions of this process."""

    def __init__(self, limit: int, gauge: Gauge | None = None) -> None:
        self.limit = limit
        self.in_use = 0
        #: The most ever held at once since start (what tests assert on instead of RSS).
        self.peak = 0
        self._gauge = gauge

    def take(self, size: int) -> bool:
        """Count ``size`` more bytes as held; ``False`` (nothing counted) past the budget."""
        if self.in_use + size > self.limit:
            return False
        self.in_use += size
        self.peak = max(self.peak, self.in_use)
        if self._gauge is not None:
            self._gauge.set(self.in_use)
        return True

    def give(self, size: int) -> None:
        """``size`` bytes counted by :meth:`take` are no longer held."""
        self.in_use -= size
        if self._gauge is not None:
            self._gauge.set(self.in_use)


class BodyBuffer:
    """One message's bytes as they arrive, counted against a :class:`BodyBudget`.

    A refused :meth:`add` empties the buffer and marks it ``refused``; every later ``add``
    is dropped, so the caller can keep reading the client's data to stay in step.
    """

    __slots__ = ("_budget", "_data", "_held", "refused")

    def __init__(self, budget: BodyBudget) -> None:
        self._budget = budget
        self._data = bytearray()
        self._held = 0
        self.refused = False

    def __len__(self) -> int:
        return len(self._data)

    def reserve(self, size: int) -> bool:
        """Count ``size`` bytes about to arrive (a BDAT chunk); ``False`` past the budget."""
        if not self._budget.take(size):
            return False
        self._held += size
        return True

    def add(self, piece: bytes | bytearray | memoryview) -> bool:
        """Append ``piece``, taking more from the budget (in steps of :data:`STEP`) when
        it goes past what is counted; ``False`` once the budget refused this message."""
        if self.refused:
            return False
        missing = len(self._data) + len(piece) - self._held
        if missing > 0 and not self.reserve(max(missing, STEP)):
            self.refused = True
            self.release()
            return False
        self._data += piece
        return True

    def take_bytes(self) -> bytes:
        """The message as ``bytes``; the buffer is emptied, the bytes stay counted until
        :meth:`release` (the caller holds them until the hand-off returned)."""
        data, self._data = bytes(self._data), bytearray()
        return data

    def release(self) -> None:
        """Give every counted byte back to the budget and drop what is still buffered."""
        self._data = bytearray()
        self._budget.give(self._held)
        self._held = 0
