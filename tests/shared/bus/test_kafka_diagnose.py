"""ProduceTrouble: the broker answers a retrying producer hides, worded for the log."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.bus.kafka_common import WireNames
from shared.bus.kafka_diagnose import MEMORY, ProduceTrouble


@dataclass
class ProduceResponse_v8:  # named as aiokafka names it: how a produce answer is known
    topics: list[tuple[str, list[tuple[int, int]]]] = field(default_factory=list)


@dataclass
class MetadataResponse_v5:
    topics: list[tuple[str, list[tuple[int, int]]]] = field(default_factory=list)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_not_enough_replicas_is_named_with_its_meaning_and_partitions() -> None:
    clock = Clock()
    trouble = ProduceTrouble(WireNames("p."), clock)
    assert trouble.explain() == ""
    trouble.saw_response(ProduceResponse_v8([("p.postline.submitted", [(0, 19), (3, 19), (4, 0)])]))
    # A retired producer's retry, answered later, does not hide the cause.
    trouble.saw_response(ProduceResponse_v8([("p.postline.submitted", [(0, 47)])]))
    trouble.saw_response(MetadataResponse_v5([("p.postline.submitted", [(1, 19)])]))
    assert trouble.explain() == (
        "NOT_ENOUGH_REPLICAS on postline.submitted[0,3]: fewer in-sync replicas than "
        "min.insync.replicas (brokers down?); INVALID_PRODUCER_EPOCH on postline.submitted[0]"
    )


def test_old_answers_are_forgotten_and_a_success_clears_them() -> None:
    clock = Clock()
    trouble = ProduceTrouble(WireNames(""), clock)
    trouble.saw_response(ProduceResponse_v8([("postline.events", [(2, 7)])]))
    assert trouble.explain().startswith("REQUEST_TIMED_OUT on postline.events[2]: the leader")
    clock.now += MEMORY + 1
    assert trouble.explain() == ""
    trouble.saw_response(ProduceResponse_v8([("postline.events", [(2, 6)])]))
    trouble.clear()
    assert trouble.explain() == ""
