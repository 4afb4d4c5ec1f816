"""The rolling window's buckets: added in hour order, pruned at the window's start."""

from __future__ import annotations

from services.reputation.window import add, first_hour, hour_of, prune
from shared.reputation import total
from shared.wire.records import ReputationBucket, ReputationCounts

ONE = ReputationCounts(sent=1, delivered=1)


def hours(buckets: tuple[ReputationBucket, ...]) -> list[int]:
    return [b.hour for b in buckets]


def test_counts_land_in_their_hour_in_order() -> None:
    buckets: tuple[ReputationBucket, ...] = ()
    for hour in (10, 12, 11, 10, 9, 12):
        buckets = add(buckets, hour, ONE)
    assert hours(buckets) == [9, 10, 11, 12]
    assert [b.counts.sent for b in buckets] == [1, 2, 1, 2]
    assert total(buckets).delivered == 6


def test_prune_keeps_the_window_that_ends_at_the_newest_hour() -> None:
    buckets: tuple[ReputationBucket, ...] = ()
    for hour in range(100, 130):
        buckets = add(buckets, hour, ONE)
    kept = prune(buckets, newest_hour=129, hours=24)
    assert hours(kept) == list(range(106, 130))
    assert first_hour(129, 24) == 106
    assert prune(kept, newest_hour=129, hours=24) is kept  # nothing to drop: unchanged


def test_hour_of_uses_utc_hours_of_the_event_time() -> None:
    assert hour_of(3600 * 5 + 3599.9) == 5
    assert hour_of(3600 * 6) == 6


def test_prune_drops_an_old_hour_before_one_still_inside() -> None:
    # A scope that sent yesterday morning and again this morning: yesterday's hour leaves
    # the 24 h window, this morning's stays, though it is second in the buckets.
    buckets = add(add((), 100, ONE), 120, ONE)
    assert hours(prune(buckets, newest_hour=129, hours=24)) == [120]
    assert hours(prune(add((), 100, ONE), newest_hour=129, hours=24)) == []
