"""The stage's records in memory, with the changes of the batch in hand kept apart.

Owns the committed state (every scope's :class:`~shared.wire.records.Reputation` and the
stage clock, the newest event time seen) and the changes of the current batch on top of it.
The batch loop tells which way each batch went (``shared.runtime.batch.BatchState``):
committed, the changes become the state; discarded, they are forgotten, so a batch fetched
again after a failed transaction is not counted twice. Loaded from ``postline.reputation``
(the records are the state: nothing else is kept), at start and whenever the consumer's
partitions change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from shared.wire.records import Reputation


class ScopeTable:
    """Records by key, with a tentative layer for the batch in hand."""

    def __init__(self) -> None:
        self._committed: dict[str, Reputation] = {}
        self._pending: dict[str, Reputation | None] = {}  # None: removed (a tombstone)
        self._clock = 0.0
        self._pending_clock: float | None = None

    def load(self, records: Mapping[str, Reputation]) -> None:
        """Replace the state with ``records`` (the compacted topic as it is now); the clock
        resumes at the newest record's time."""
        self._committed = dict(records)
        self._pending.clear()
        self._pending_clock = None
        self._clock = max((r.updated_at for r in records.values()), default=0.0)

    @property
    def clock(self) -> float:
        """The newest event time seen (the batch in hand's included)."""
        return self._pending_clock if self._pending_clock is not None else self._clock

    @property
    def committed_clock(self) -> float:
        """The clock as of the last committed batch."""
        return self._clock

    def advance(self, at: float) -> None:
        """An event of time ``at`` was seen; the clock never goes back."""
        if at > self.clock:
            self._pending_clock = at

    def get(self, key: str) -> Reputation | None:
        """The record of ``key`` as the batch in hand left it."""
        if key in self._pending:
            return self._pending[key]
        return self._committed.get(key)

    def put(self, record: Reputation) -> None:
        """Set a record (tentatively, until the batch commits)."""
        self._pending[record.key] = record

    def remove(self, key: str) -> None:
        """Remove a record (a tombstone on the topic)."""
        if self.get(key) is not None:
            self._pending[key] = None

    def all_keys(self) -> list[str]:
        """Every key with a record, the batch in hand's changes included."""
        keys = set(self._committed) | {k for k, v in self._pending.items() if v is not None}
        return sorted(k for k in keys if self.get(k) is not None)

    def changes(self) -> dict[str, Reputation | None]:
        """What the batch in hand changed, by key (``None``: removed)."""
        return {
            key: record
            for key, record in self._pending.items()
            if record != self._committed.get(key)
        }

    def committed(self) -> None:
        """The batch in hand committed: its changes are the state now."""
        for key, record in self._pending.items():
            if record is None:
                self._committed.pop(key, None)
            else:
                self._committed[key] = record
        if self._pending_clock is not None:
            self._clock = self._pending_clock
        self.discarded()

    def discarded(self) -> None:
        """The batch in hand did not commit: forget its changes."""
        self._pending.clear()
        self._pending_clock = None

    def current(self) -> list[Reputation]:
        """Every record, the batch in hand's changes included."""
        return [r for k in self.all_keys() if (r := self.get(k)) is not None]

    def committed_records(self) -> Iterator[Reputation]:
        """Every committed record (what ``postline.reputation`` holds), without a copy:
        read it before the next batch changes the table."""
        return iter(self._committed.values())
