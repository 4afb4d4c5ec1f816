"""TLS-RPT as a role of the bouncer stage: counting in the events batch, sending beside it.

Why the bouncer: it already reads every event of ``postline.events`` exactly once, in
transactions, as one consumer group whose replicas split the partitions, and it already
sends mail back through the pipeline (DSNs). The counts ride in its batch transactions
(:meth:`TlsReporting.handle` returns the changed records; the batch loop's
``BatchState`` calls keep them in step with what committed); the sender runs as a task of
the stage and sends the days of the domains whose events partition this replica owns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry

from services.bouncer.metrics import TlsRptMetrics
from services.bouncer.tlsrpt.config import TlsRptConfig
from services.bouncer.tlsrpt.counts import SessionCounter
from services.bouncer.tlsrpt.https import HttpsReporter
from services.bouncer.tlsrpt.sender import ReportSender
from shared.bus.base import Bus, TopicPartition
from shared.errors import DecodeError
from shared.fcrdns import resolver_for
from shared.runtime.batch import Item
from shared.version import package_version
from shared.wire.records import Event, TlsRpt
from shared.wire.topics import EVENTS, TLSRPT, OutRecord


class TlsReporting:
    """The counter (a ``BatchState`` of the events loop) and the daily sender."""

    def __init__(
        self,
        config: TlsRptConfig,
        *,
        bus: Bus,
        registry: CollectorRegistry,
        log: logging.Logger,
        clock: Callable[[], float],
        publish_timeout: float,
    ) -> None:
        self.config = config
        self.bus = bus
        self.log = log
        self.metrics = TlsRptMetrics(registry)
        self.counter = SessionCounter(
            send_delay=float(config.send_delay),
            max_failure_details=config.max_failure_details,
            clock=clock,
        )
        self.sender = ReportSender(
            config,
            bus=bus,
            owns=self.owns,
            clock=clock,
            resolver=resolver_for(config.nameservers, float(config.dns_timeout)),
            https=HttpsReporter(
                timeout=float(config.http_timeout),
                ca_file=config.ca_file,
                user_agent=f"Postline-TLSRPT/{package_version()}",
            ),
            metrics=self.metrics,
            log=log,
            publish_timeout=publish_timeout,
        )

    def handle(self, items: Sequence[Item[Event]]) -> list[OutRecord]:
        """Count a batch's ``tls_session`` events; the changed count records to publish."""
        for item in items:
            self.counter.count(item.record, item.message.partition)
        return self.counter.changes()

    def committed(self) -> None:
        """The batch committed: keep its counts."""
        self.metrics.counted(self.counter.committed())

    def discarded(self) -> None:
        """The batch did not commit: forget its counts."""
        self.counter.discarded()

    async def assigned(self, partitions: frozenset[TopicPartition]) -> None:
        """Load the committed counts of the events partitions now owned."""
        table = await self.bus.read_table(TLSRPT.name)
        records: list[TlsRpt] = []
        for key, value in table.items():
            try:
                records.append(TLSRPT.decode(value))
            except DecodeError as exc:  # a newer writer's record: that key starts afresh
                self.log.warning(
                    "undecodable tlsrpt record skipped",
                    extra={"key": key.decode("utf-8", "replace"), "error": str(exc)},
                )
        owned = frozenset(tp.partition for tp in partitions if tp.topic == EVENTS.name)
        self.counter.load(records, owned)
        self.sender.rescan()  # days of the domains now ours may be due
        self.log.info(
            "tlsrpt counts loaded",
            extra={"records": len(self.counter.current()), "partitions": sorted(owned)},
        )

    async def owns(self, domain: str) -> bool:
        """Whether this replica sends ``domain``'s reports: it owns the events partition
        the domain's key (the deliverer's ``tls_session`` key) falls in."""
        if not self.counter.owned:
            return False
        return await self.bus.partition_of(EVENTS.name, domain.encode()) in self.counter.owned
