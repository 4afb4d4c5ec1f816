"""Counting the deliverer's ``tls_session`` events into TLS-RPT records (RFC 8460 4.4).

Owns the counts of the events partitions this bouncer replica consumes: per policy domain,
UTC day and partition one :class:`~shared.wire.records.TlsRpt` record on
``postline.tlsrpt`` holding every policy seen that day (type, strings, mx patterns) with
its successful and failed sessions and the failure-details rows. A batch's changed
records go out in the batch's transaction with its offsets, so the counts are exactly
those of the committed events: a batch fetched again (a failed transaction, a restart)
starts from the committed counts (``shared.runtime.batch.BatchState``), never counts twice.
Keying by events partition means two replicas never write the same record; the sender
adds the partitions up.

A day's counts close ``send_delay`` after the day ends (by the injected clock): later
events of it are dropped (counted as ``late``), as its report may be on its way. It
publishes nothing and sends nothing (``sender.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.wire.records import Event, EventKind, TlsRpt, TlsRptFailure, TlsRptPolicy
from shared.wire.topics import TLSRPT, OutRecord, tlsrpt_key

DAY = 86400
#: RFC 8460 4.3 ``policy-type`` when the deliverer named none (a writer before policies).
NO_POLICY = "no-policy-found"
#: Longest ``failure-reason-code`` kept (the deliverer's detail can be a whole reply).
MAX_REASON = 200

_PolicyKey = tuple[str, tuple[str, ...], tuple[str, ...]]
_FailureKey = tuple[str, str, str, str, str]


def day_of(at: float) -> str:
    """The UTC day (``YYYY-MM-DD``) of epoch seconds ``at``."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def day_start(day: str) -> float:
    """Epoch seconds of ``day``'s first second (UTC)."""
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()


def closed(day: str, now: float, delay: float) -> bool:
    """Whether ``day``'s counts are closed (its report due) at ``now``."""
    return now >= day_start(day) + DAY + delay


@dataclass
class _Policy:
    successful: int = 0
    failed: int = 0
    failures: dict[_FailureKey, int] = field(default_factory=dict)


@dataclass
class _Day:
    """One record's counts, mutable while batches add to them."""

    domain: str
    day: str
    partition: int
    policies: dict[_PolicyKey, _Policy] = field(default_factory=dict)
    updated_at: float = 0.0

    def record(self) -> TlsRpt:
        policies = tuple(
            TlsRptPolicy(
                policy_type=key[0],
                policy_strings=key[1],
                mx_patterns=key[2],
                successful=counts.successful,
                failed=counts.failed,
                failures=tuple(
                    TlsRptFailure(
                        result_type=f[0],
                        sending_mta_ip=f[1],
                        receiving_mx_hostname=f[2],
                        receiving_ip=f[3],
                        failure_reason_code=f[4],
                        count=n,
                    )
                    for f, n in sorted(counts.failures.items())
                ),
            )
            for key, counts in sorted(self.policies.items())
        )
        return TlsRpt(
            domain=self.domain,
            day=self.day,
            partition=self.partition,
            policies=policies,
            updated_at=self.updated_at,
        )

    @classmethod
    def of(cls, record: TlsRpt) -> _Day:
        result = cls(record.domain, record.day, record.partition, updated_at=record.updated_at)
        for policy in record.policies:
            key = (policy.policy_type, policy.policy_strings, policy.mx_patterns)
            result.policies[key] = _Policy(
                policy.successful,
                policy.failed,
                {
                    (
                        f.result_type,
                        f.sending_mta_ip,
                        f.receiving_mx_hostname,
                        f.receiving_ip,
                        f.failure_reason_code,
                    ): f.count
                    for f in policy.failures
                },
            )
        return result


class SessionCounter:
    """The counts of the owned partitions, with the batch in hand's changes kept apart."""

    def __init__(
        self, *, send_delay: float, max_failure_details: int, clock: Callable[[], float]
    ) -> None:
        self._delay = send_delay
        self._max_details = max_failure_details
        self._clock = clock
        self._committed: dict[str, _Day] = {}
        self._pending: dict[str, _Day] = {}
        self._tally: dict[str, int] = {}
        #: The events partitions this replica owns (the sender sends their domains' days).
        self.owned: frozenset[int] = frozenset()

    def load(self, records: Iterable[TlsRpt], partitions: frozenset[int]) -> None:
        """Start from the committed ``counts`` records of ``partitions`` (the topic as it
        is now); the records of other partitions are other replicas'."""
        self.owned = partitions
        self._pending.clear()
        self._tally.clear()
        self._committed = {
            tlsrpt_key(r.day, r.domain, r.partition): _Day.of(r)
            for r in records
            if r.state == "counts" and r.partition in partitions
        }

    def count(self, event: Event, partition: int) -> None:
        """Count one event from ``partition`` (tentatively, until the batch commits)."""
        if event.kind is not EventKind.TLS_SESSION:
            return
        domain = (event.tls_policy_domain or event.domain).lower().rstrip(".")
        if not domain:
            self._tallied("invalid")
            return
        day = day_of(event.at)
        if closed(day, self._clock(), self._delay):
            self._tallied("late")
            return
        key = tlsrpt_key(day, domain, partition)
        entry = self._pending.get(key)
        if entry is None:
            found = self._committed.get(key)
            entry = copy.deepcopy(found) if found else _Day(domain, day, partition)
            self._pending[key] = entry
        entry.updated_at = max(entry.updated_at, event.at)
        policy_key = (
            event.tls_policy_type or NO_POLICY,
            tuple(event.tls_policy),
            tuple(event.tls_mx_patterns),
        )
        policy = entry.policies.setdefault(policy_key, _Policy())
        if not event.tls_failure:
            policy.successful += 1
            self._tallied("successful")
            return
        policy.failed += 1
        self._tallied("failed")
        failure = (
            event.tls_failure,
            event.source,
            event.mx.lower().rstrip("."),
            event.mx_address,
            " ".join(event.detail.split())[:MAX_REASON],
        )
        if failure in policy.failures or len(policy.failures) < self._max_details:
            policy.failures[failure] = policy.failures.get(failure, 0) + 1

    def _tallied(self, result: str) -> None:
        self._tally[result] = self._tally.get(result, 0) + 1

    def changes(self) -> list[OutRecord]:
        """The records the batch in hand changed, to publish in its transaction."""
        return [TLSRPT.out(entry.record()) for _, entry in sorted(self._pending.items())]

    def committed(self) -> Mapping[str, int]:
        """The batch in hand committed: its counts are the state now. Returns the sessions
        it counted by result (successful, failed, late, invalid), for the metrics."""
        self._committed.update(self._pending)
        tally = self._tally
        self.discarded()
        now = self._clock()
        for key in [k for k, e in self._committed.items() if closed(e.day, now, self._delay)]:
            del self._committed[key]  # the sender has (or will have) the record: forget it
        return tally

    def discarded(self) -> None:
        """The batch in hand did not commit: forget its counts."""
        self._pending = {}
        self._tally = {}

    def current(self) -> list[TlsRpt]:
        """Every committed record held (for tests and diagnostics)."""
        return [entry.record() for _, entry in sorted(self._committed.items())]
