"""The watermark: offsets never pass an unfinished delivery."""

from __future__ import annotations

from shared.bus.base import TopicPartition
from shared.runtime.watermark import Watermark
from shared.wire.topics import OutRecord

TP0 = TopicPartition("postline.outbound", 0)
TP1 = TopicPartition("postline.outbound", 1)


def out(n: int) -> OutRecord:
    return OutRecord("postline.events", None, str(n).encode())


def test_commits_only_the_contiguous_finished_prefix() -> None:
    wm = Watermark()
    for offset in (5, 6, 7, 8):
        wm.add(TP0, offset)
    wm.finish(TP0, 7, [out(7)])
    wm.finish(TP0, 6, [out(6)])
    assert not len(wm.take())  # 5 is unfinished: nothing may be committed
    wm.finish(TP0, 5, [out(5)])
    taken = wm.take()
    assert taken.offsets == {TP0: 8}  # 5, 6, 7 done; 8 still in flight
    assert taken.outputs == [out(5), out(6), out(7)]
    assert wm.pending == 1


def test_partitions_are_independent() -> None:
    wm = Watermark()
    wm.add(TP0, 0)
    wm.add(TP1, 10)
    wm.finish(TP1, 10, [])
    assert wm.take().offsets == {TP1: 11}


def test_restore_after_an_aborted_transaction() -> None:
    wm = Watermark()
    for offset in range(3):
        wm.add(TP0, offset)
        wm.finish(TP0, offset, [out(offset)])
    taken = wm.take()
    wm.restore(taken)
    assert wm.pending == 3
    assert wm.next_offsets() == {TP0: 3}
    again = wm.take()
    assert again.outputs == taken.outputs and again.offsets == {TP0: 3}


def test_refetched_records_are_not_tracked_twice() -> None:
    wm = Watermark()
    assert wm.add(TP0, 0)
    assert not wm.add(TP0, 0)
    assert wm.pending == 1
    wm.forget(TP0)
    assert wm.pending == 0


def test_partitions_lists_only_those_with_work() -> None:
    wm = Watermark()
    wm.add(TP0, 0)
    wm.add(TP1, 0)
    wm.finish(TP1, 0, [])
    wm.take()
    assert wm.partitions() == [TP0]
