"""Which input offsets may be committed when deliveries finish out of order.

Owns: :class:`Watermark`, per partition the offsets taken in and their outputs once finished.
Only the contiguous finished prefix of each partition is handed out (with its outputs, in
offset order), so the offsets committed in one bus transaction never pass an unfinished
delivery: a crash redoes at most the unfinished SMTP transactions (and those finished after
the lowest unfinished one), never skips one. Does not talk to the bus
(``shared.runtime.watermark_loop`` does).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.bus.base import TopicPartition
from shared.wire.topics import OutRecord

_UNFINISHED = None


@dataclass
class _Partition:
    offsets: deque[int] = field(default_factory=deque)
    outputs: dict[int, list[OutRecord] | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Committable:
    """What one transaction should publish and commit."""

    finished: list[tuple[TopicPartition, int, list[OutRecord]]]  # in offset order per partition

    @property
    def offsets(self) -> dict[TopicPartition, int]:
        """The next offset to read, per partition."""
        return {tp: offset + 1 for tp, offset, _ in self.finished}

    @property
    def outputs(self) -> list[OutRecord]:
        """Every output of the finished records, in offset order per partition."""
        return [record for _, _, records in self.finished for record in records]

    def __len__(self) -> int:
        return len(self.finished)


class Watermark:
    """Tracks in-flight offsets of one consumer."""

    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._pending = 0

    @property
    def pending(self) -> int:
        """Records taken in and not yet handed out by :meth:`take`."""
        return self._pending

    def add(self, tp: TopicPartition, offset: int) -> bool:
        """An input record was fetched; ``False`` when it is already tracked (refetched)."""
        part = self._partitions.setdefault(tp, _Partition())
        if offset in part.outputs or (part.offsets and offset < part.offsets[0]):
            return False
        part.offsets.append(offset)
        part.outputs[offset] = _UNFINISHED
        self._pending += 1
        return True

    def finish(self, tp: TopicPartition, offset: int, outputs: Sequence[OutRecord]) -> bool:
        """The record is done; ``outputs`` are published when its offset is committed.

        Only the first finish of a record counts (``True``); a later one (work that ended
        after the record was failed for taking too long, or after its partition moved) is
        ignored and returns ``False``.
        """
        part = self._partitions.get(tp)
        if part is None or part.outputs.get(offset, ()) is not _UNFINISHED:
            return False
        part.outputs[offset] = list(outputs)
        return True

    def unfinished(self, tp: TopicPartition, offset: int) -> bool:
        """Whether the record is tracked and not finished yet."""
        part = self._partitions.get(tp)
        return part is not None and offset in part.outputs and part.outputs[offset] is None

    def take(self) -> Committable:
        """Remove and return the finished prefix of every partition."""
        finished: list[tuple[TopicPartition, int, list[OutRecord]]] = []
        for tp, part in self._partitions.items():
            while part.offsets and part.outputs[part.offsets[0]] is not _UNFINISHED:
                offset = part.offsets.popleft()
                finished.append((tp, offset, part.outputs.pop(offset) or []))
        self._pending -= len(finished)
        return Committable(finished)

    def restore(self, taken: Committable) -> None:
        """Put back what :meth:`take` returned, when its transaction aborted."""
        for tp, offset, outputs in reversed(taken.finished):
            part = self._partitions.setdefault(tp, _Partition())
            part.offsets.appendleft(offset)
            part.outputs[offset] = outputs
        self._pending += len(taken)

    def next_offsets(self) -> dict[TopicPartition, int]:
        """Per partition, the offset after the last one taken in (to seek after an abort)."""
        return {tp: part.offsets[-1] + 1 for tp, part in self._partitions.items() if part.offsets}

    def partitions(self) -> list[TopicPartition]:
        """Partitions with records in hand."""
        return [tp for tp, part in self._partitions.items() if part.offsets]

    def truncate(self, tp: TopicPartition, offset: int) -> int:
        """Stop tracking ``offset`` and every later record of ``tp`` (they will be fetched
        again after a seek); how many were dropped. Finished records before it stay."""
        part = self._partitions.get(tp)
        if part is None:
            return 0
        dropped = 0
        while part.offsets and part.offsets[-1] >= offset:
            part.outputs.pop(part.offsets.pop(), None)
            dropped += 1
        self._pending -= dropped
        return dropped

    def forget(self, tp: TopicPartition) -> None:
        """Drop a partition this consumer no longer owns (its work is redone elsewhere)."""
        part = self._partitions.pop(tp, None)
        if part is not None:
            self._pending -= len(part.offsets)
