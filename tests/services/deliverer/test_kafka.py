"""The deliverer on the real Kafka broker: delivery, a deferral through a retry tier, and
transactional commits (events and retry records with the offsets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import KafkaConfig
from shared.wire.records import EventKind
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.smtpsink import SmtpSink, free_port
from tests.services.deliverer.harness import deliverer_section, delivery, running_deliverer

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def test_delivery_and_retry_on_kafka(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    port = free_port(LOOPBACKS[:1])
    kafka = KafkaConfig(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port), kafka=kafka) as d,
    ):
        sink.script_rcpt("later@dest.test", "451 4.3.0 Try later")
        await d.send(delivery("now@dest.test"), delivery("later@dest.test"))
        (deferred,) = await d.wait_events(EventKind.DEFERRED, 1, timeout=60)
        assert deferred.recipient == "later@dest.test"
        delivered = await d.wait_events(EventKind.DELIVERED, 2, timeout=60)
        assert sorted(e.recipient for e in delivered) == ["later@dest.test", "now@dest.test"]
        await d.settle(timeout=60)
        assert sorted(sink.recipients()) == ["later@dest.test", "now@dest.test"]
