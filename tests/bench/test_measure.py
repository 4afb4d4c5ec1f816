"""The delivery figures of one run (``bench/measure.py``) from the sink's receipts: only this
run's messages count, a message delivered twice counts its extra recipients as duplicates,
one never delivered counts as missing, and the latencies run from accept to last receipt."""

from __future__ import annotations

from typing import Any

from bench.load import LoadResult
from bench.measure import delivery_figures
from bench.sink import Receipt


class FakeSink:
    """The sink's receipts, as the sink process would have logged them."""

    def __init__(self, receipts: list[Receipt]) -> None:
        self._receipts = receipts

    def receipts(self) -> list[Receipt]:
        return self._receipts


def figures(receipts: list[Receipt], load: LoadResult) -> dict[str, Any]:
    return delivery_figures(FakeSink(receipts), load)  # type: ignore[arg-type]


def test_missing_duplicates_rate_and_latency() -> None:
    load = LoadResult(
        accepted=3,
        started_at=100.0,
        accepted_at={"<a@x>": 100.5, "<b@x>": 101.0, "<c@x>": 101.5},
        recipients={"<a@x>": 1, "<b@x>": 2, "<c@x>": 1},
    )
    receipts = [
        Receipt(at=101.0, message_id="<a@x>", rcpts=1),
        Receipt(at=102.0, message_id="<b@x>", rcpts=2),
        Receipt(at=104.0, message_id="<b@x>", rcpts=1),  # one recipient again: a duplicate
        Receipt(at=103.0, message_id="<other@x>", rcpts=5),  # not this run's mail
    ]
    out = figures(receipts, load)
    assert out["delivered_messages"] == 2
    assert out["missing_messages"] == 1  # <c@x>
    assert out["duplicate_recipients"] == 1
    assert out["delivered_recipients"] == 4
    assert out["delivered_seconds"] == 4.0  # first submission to last receipt
    assert out["delivered_per_s"] == 1.0
    # accept to last receipt: a 0.5 s, b 3.0 s (nearest rank: p50 of two is the second)
    assert out["e2e_p50_ms"] == 3000.0
    assert out["e2e_p99_ms"] == 3000.0


def test_nothing_delivered_is_all_missing() -> None:
    load = LoadResult(
        accepted=2,
        started_at=50.0,
        accepted_at={"<a@x>": 50.1, "<b@x>": 50.2},
        recipients={"<a@x>": 1, "<b@x>": 1},
    )
    out = figures([], load)
    assert out["missing_messages"] == 2
    assert out["delivered_messages"] == 0
    assert out["delivered_per_s"] == 0.0
    assert out["duplicate_recipients"] == 0
