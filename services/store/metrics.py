"""The store stage's metrics, and the sensor the stage reports through.

Labels are bounded: ``reason`` of a failed batch is ``unavailable`` (the database is down or
slow: nothing is lost, the batch comes again) or ``refused`` (the database refused a
statement: the batch is retried record by record and the culprit dead-lettered).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.store.writer import WriteResult


class StoreMetrics:
    """Every store-stage metric, registered on the registry passed in (no global state)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.written = Counter(
            "postline_store_events_written_total",
            "Events inserted into the reporting store. Compare with the rate of "
            "postline.events: lower for long means the store falls behind (the consumer "
            "lag of group postline-store says by how much).",
            registry=registry,
        )
        self.duplicates = Counter(
            "postline_store_duplicates_total",
            "Events the store already held (a replay after a restart or a rebalance, a "
            "producer's retry): skipped, counted nowhere. Bursts after restarts are normal.",
            registry=registry,
        )
        self.erased = Counter(
            "postline_store_erased_skipped_total",
            "Events about an address erased with postline gdpr erase, from before the "
            "erasure, not written back (the stage's lag at the time, or a rebuild from the "
            "start of postline.events).",
            registry=registry,
        )
        self.write_seconds = Histogram(
            "postline_store_write_seconds",
            "One batch's database transaction (attribution, events, messages, rollups). "
            "Seconds per batch of [store] batch events: a slow database shows here first.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.batch_errors = Counter(
            "postline_store_batch_errors_total",
            "Batches the database did not take, by reason: unavailable (down, slow, full; "
            "also a failed connection at start: the stage is unready and retries, nothing "
            "is lost) or refused (a statement the database rejected: the batch is retried "
            "record by record, and a record refused every time is dead-lettered).",
            ["reason"],
            registry=registry,
        )
        self.unavailable = Gauge(
            "postline_store_database_unavailable",
            "1 while the store's database is unreachable (the stage holds its offsets and "
            "retries with back-off), else 0.",
            registry=registry,
        )
        self.newest_event = Gauge(
            "postline_store_newest_event_timestamp_seconds",
            "The time of the newest event written (epoch seconds): time() minus this is how "
            "far behind the store's reports are, when events keep coming.",
            registry=registry,
        )
        self.partitions = Gauge(
            "postline_store_partitions",
            "Days the store holds (PostgreSQL: daily partitions, today's and the coming "
            "ones included; SQLite: days with events). Should stay about the retention in "
            "days plus [store] partitions_ahead: growing past it means expiry is not running.",
            registry=registry,
        )
        self.expired_days = Counter(
            "postline_store_partitions_dropped_total",
            "Days dropped at retention (a partition dropped whole, or a day deleted on SQLite).",
            registry=registry,
        )


class StoreSensor:
    """What the stage tells the metrics: a written batch, a failure, retention."""

    def __init__(self, metrics: StoreMetrics) -> None:
        self.metrics = metrics
        self._newest = 0.0

    def wrote(self, result: WriteResult, seconds: float) -> None:
        """A batch committed."""
        m = self.metrics
        m.written.inc(result.written)
        m.duplicates.inc(result.duplicates)
        m.write_seconds.observe(seconds)
        if result.newest_at > self._newest:  # batches from other partitions may be older
            self._newest = result.newest_at
            m.newest_event.set(result.newest_at)

    def skipped_erased(self, count: int) -> None:
        """Events about erased addresses were left out of a batch."""
        self.metrics.erased.inc(count)

    def failed(self, reason: str) -> None:
        """A batch was not taken (``unavailable`` or ``refused``)."""
        self.metrics.batch_errors.labels(reason).inc()

    def database(self, *, available: bool) -> None:
        """The database went away or came back."""
        self.metrics.unavailable.set(0 if available else 1)

    def retention(self, partitions: int, dropped: int) -> None:
        """A retention pass ended."""
        self.metrics.partitions.set(partitions)
        self.metrics.expired_days.inc(dropped)
