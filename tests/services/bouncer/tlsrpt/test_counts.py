"""Counting tls_session events: per policy and day, failure-details rows, the batch's
changes forgotten when it does not commit, and a closed day's late events dropped."""

from __future__ import annotations

from services.bouncer.tlsrpt.counts import DAY, SessionCounter, closed, day_of, day_start
from services.bouncer.tlsrpt.report import merge
from shared.wire.records import Event, EventKind, TlsRpt
from shared.wire.topics import TLSRPT

DAY_D = "2026-03-14"
START = day_start(DAY_D)
DELAY = 3600.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def session(failure: str = "", *, at: float = START + 100, mx: str = "mx1.dest.test") -> Event:
    return Event(
        kind=EventKind.TLS_SESSION,
        at=at,
        domain="dest.test",
        mx=mx,
        mx_address="192.0.2.10",
        source="198.51.100.7",
        tls_failure=failure,
        tls_policy_domain="dest.test",
        tls_policy_type="sts",
        tls_policy=("version: STSv1", "mode: enforce"),
        tls_mx_patterns=("mx1.dest.test",),
        detail="certificate has expired" if failure else "",
    )


def counter(clock: Clock, details: int = 200) -> SessionCounter:
    return SessionCounter(send_delay=DELAY, max_failure_details=details, clock=clock)


def records(c: SessionCounter) -> list[TlsRpt]:
    return [TLSRPT.decode(out.value) for out in c.changes() if out.value is not None]


def test_day_bounds() -> None:
    assert day_of(START) == DAY_D
    assert day_of(START + DAY - 1) == DAY_D
    assert day_of(START + DAY) == "2026-03-15"
    assert not closed(DAY_D, START + DAY + DELAY - 1, DELAY)
    assert closed(DAY_D, START + DAY + DELAY, DELAY)


def test_sessions_are_counted_per_policy_with_failure_details() -> None:
    c = counter(Clock(START + 200))
    c.load([], frozenset({0, 1}))
    for _ in range(3):
        c.count(session(), 0)
    c.count(session("certificate-expired"), 0)
    c.count(session("certificate-expired"), 0)
    c.count(session("starttls-not-supported", mx="mx2.dest.test"), 0)
    c.count(Event(kind=EventKind.DELIVERED, at=START, domain="dest.test"), 0)  # not a session
    [record] = records(c)
    assert TLSRPT.key(record) == f"counts|{DAY_D}|dest.test|0".encode()
    [policy] = record.policies
    assert (policy.policy_type, policy.successful, policy.failed) == ("sts", 3, 3)
    rows = {(f.result_type, f.receiving_mx_hostname): f.count for f in policy.failures}
    assert rows == {
        ("certificate-expired", "mx1.dest.test"): 2,
        ("starttls-not-supported", "mx2.dest.test"): 1,
    }
    assert c.committed() == {"successful": 3, "failed": 3}
    assert c.changes() == []  # committed: nothing pending


def test_a_discarded_batch_is_forgotten_and_the_next_starts_from_the_committed() -> None:
    c = counter(Clock(START + 200))
    c.load([], frozenset({0}))
    c.count(session(), 0)
    c.committed()
    c.count(session(), 0)
    c.count(session(), 0)
    c.discarded()
    c.count(session(), 0)
    [record] = records(c)
    assert record.policies[0].successful == 2  # 1 committed + 1, the discarded 2 gone


def test_load_keeps_only_the_owned_partitions_and_resumes_their_counts() -> None:
    first = counter(Clock(START + 200))
    first.load([], frozenset({0, 1}))
    first.count(session(), 0)
    first.count(session(), 1)
    saved = records(first)
    first.committed()
    second = counter(Clock(START + 300))
    second.load(saved, frozenset({1}))
    second.count(session(), 1)
    [record] = records(second)
    assert (record.partition, record.policies[0].successful) == (1, 2)
    assert sum(p.successful for p in merge(saved)) == 2


def test_a_closed_days_late_events_are_dropped() -> None:
    clock = Clock(START + DAY + DELAY)
    c = counter(clock)
    c.load([], frozenset({0}))
    c.count(session(), 0)
    assert c.changes() == []
    assert c.committed() == {"late": 1}


def test_failure_details_are_bounded_but_the_summary_counts_all() -> None:
    c = counter(Clock(START + 200), details=2)
    c.load([], frozenset({0}))
    for i in range(5):
        c.count(session("validation-failure", mx=f"mx{i}.dest.test"), 0)
    [record] = records(c)
    assert record.policies[0].failed == 5
    assert len(record.policies[0].failures) == 2
