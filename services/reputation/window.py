"""A scope's rolling window: hourly buckets of counts, kept in hour order.

Owns adding an event's counts to its hour and dropping the hours that left the window. The
window ends at the stage's clock (the newest event time seen), never the wall clock, so a
replay of the same events gives the same buckets. Pure functions on tuples of frozen
buckets: a record is replaced, never changed in place.
"""

from __future__ import annotations

from shared.reputation import HOUR, plus
from shared.wire.records import ReputationBucket, ReputationCounts


def hour_of(at: float) -> int:
    """The UTC hour number (Unix time // 3600) of a time."""
    return int(at // HOUR)


def first_hour(newest_hour: int, hours: int) -> int:
    """The oldest hour inside a window of ``hours`` that ends with ``newest_hour``."""
    return newest_hour - hours + 1


def add(
    buckets: tuple[ReputationBucket, ...], hour: int, counts: ReputationCounts
) -> tuple[ReputationBucket, ...]:
    """``buckets`` with ``counts`` added to ``hour``'s bucket (made when missing)."""
    out: list[ReputationBucket] = []
    placed = False
    for bucket in buckets:
        if not placed and bucket.hour == hour:
            out.append(ReputationBucket(hour=hour, counts=plus(bucket.counts, counts)))
            placed = True
            continue
        if not placed and bucket.hour > hour:
            out.append(ReputationBucket(hour=hour, counts=counts))
            placed = True
        out.append(bucket)
    if not placed:
        out.append(ReputationBucket(hour=hour, counts=counts))
    return tuple(out)


def prune(
    buckets: tuple[ReputationBucket, ...], newest_hour: int, hours: int
) -> tuple[ReputationBucket, ...]:
    """The buckets still inside the window that ends with ``newest_hour``."""
    start = first_hour(newest_hour, hours)
    if not buckets or buckets[0].hour >= start:
        return buckets
    return tuple(b for b in buckets if b.hour >= start)
