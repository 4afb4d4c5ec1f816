"""Priority lanes on the real Kafka broker: a bulk backlog to a domain does not delay a
transactional message to the same domain (issue 13), measured by the events' own times.

The destination is slow (every DATA reply waits) and allows two connections, so 300 bulk
messages stay a backlog for seconds. In one lane the transactional message would queue
behind what the window already holds (about 180 of them); in its own lane it waits at most
for the bulk transactions in flight when it arrives.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import KafkaConfig
from shared.wire.records import EventKind
from shared.wire.topics import OUTBOUND, OUTBOUND_BULK
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.smtpsink import SmtpSink, free_port
from tests.services.deliverer.harness import deliverer_section, delivery, running_deliverer

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

BACKLOG = 300
CONNECTIONS = 2


async def test_a_bulk_backlog_does_not_delay_transactional_mail_to_the_same_domain(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    port = free_port(LOOPBACKS[:1])
    kafka = KafkaConfig(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    limits = {"dest.test": {"max_connections": CONNECTIONS}}
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port, domains=limits), kafka=kafka) as d,
    ):
        sink.data_delay = 0.05
        await d.send(*(delivery(f"news{i}@dest.test", bulk=True) for i in range(BACKLOG)))
        # The backlog is being delivered: the window is full and the rest waits on the topic
        # or in a retry tier (window_full).
        await d.wait_events(EventKind.DELIVERED, 20, timeout=60)
        delivered_before = len(d.of(EventKind.DELIVERED))
        await d.send(delivery("reset@dest.test"))
        delivered = await d.wait_events(EventKind.DELIVERED, BACKLOG + 1, timeout=120)
        await d.settle(timeout=60)
        registry = d.ctx.registry
        window = registry.get_sample_value("postline_deliverer_window_deliveries", {"lane": "bulk"})
        consumed = {
            topic: registry.get_sample_value(
                "postline_records_consumed_total", {"stage": "deliverer", "topic": topic}
            )
            for topic in (OUTBOUND.name, OUTBOUND_BULK.name)
        }

    [done] = [e for e in delivered if e.recipient == "reset@dest.test"]
    assert not done.bulk and done.attempt == 1
    news = [e for e in delivered if e.recipient != "reset@dest.test"]
    assert len({e.recipient for e in news}) == BACKLOG and all(e.bulk for e in news)
    # By the events' times: the bulk mail still to go when the reset was sent was (nearly
    # all) delivered after it. Only the transactions in flight on the bulk lane's
    # connections finish first (and what finished before the test saw its events).
    left = BACKLOG - delivered_before
    after = [e for e in news if e.at > done.at]
    assert len(after) >= 0.9 * left, (len(after), left)
    # The sink saw the same order.
    order = [m.rcpt_tos[0] for m in sink.messages]
    assert len(order) - 1 - order.index("reset@dest.test") == len(after)
    # The backlog stayed in its lane: bulk records shed by the full window came back from
    # the retry tier to postline.outbound.bulk, never into the transactional topic.
    assert consumed[OUTBOUND.name] == 1
    assert consumed[OUTBOUND_BULK.name] is not None and consumed[OUTBOUND_BULK.name] > BACKLOG
    assert window == 0  # the bulk lane's gauge, settled
