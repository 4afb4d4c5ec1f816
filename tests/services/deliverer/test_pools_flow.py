"""Source pools and warm-up on a running deliverer (the embedded bus and the real Kafka broker,
real DNS, a real SMTP sink that sees the client's address and EHLO name): a warming address
stops at its allowance and the excess waits for the next UTC day or overflows to another
pool."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shared.bus.base import Bus
from shared.config import KafkaConfig
from shared.pools import Pool, PoolAddress, PoolsConfig, WarmupConfig, warmup_key
from shared.reputation import DAY, day_of
from shared.wire.records import EventKind, Reputation, WarmupState
from shared.wire.topics import REPUTATION, retry_topic
from testing.dnsserver import DnsServer, mx_records
from testing.smtpsink import Received, SmtpSink
from tests.services.deliverer.harness import (
    deliverer_section,
    delivery,
    read_topic,
    running_deliverer,
)

MX = "127.0.0.4"  # the sink; the pools' addresses are 127.0.0.2 and 127.0.0.3
NEW = PoolAddress(address="127.0.0.2", ehlo_name="out2.postline.test", warmup=True)
WARM = PoolAddress(address="127.0.0.3", ehlo_name="out3.postline.test")


@pytest.fixture(
    params=["embedded", pytest.param("kafka", marks=[pytest.mark.kafka, pytest.mark.slow])]
)
def kafka(request: pytest.FixtureRequest) -> KafkaConfig | None:
    """``None`` for the embedded bus, else the test broker with a fresh topic prefix."""
    if request.param == "embedded":
        return None
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    prefix = request.getfixturevalue("topic_prefix")
    return KafkaConfig(bootstrap=bootstrap, topic_prefix=prefix)


def source_of(received: Received) -> tuple[str, str]:
    """(client address, EHLO name) of a message the sink received."""
    return received.peer[0], received.helo


async def test_a_warming_address_stops_at_its_allowance_and_the_excess_waits(
    tmp_path: Path, kafka: KafkaConfig | None
) -> None:
    # The admission clock: 30 s before a UTC midnight a day or two ahead, so the wait ends
    # at a known instant that the retry loop (on real time) does not reach during the test.
    midnight = float((day_of(time.time()) + 2) * DAY)
    pools = PoolsConfig(default="new", pool={"new": Pool(addresses=[NEW])})
    state = WarmupState(step=1, day=day_of(midnight) - 1, allowance=2, sent=0)

    async def publish_state(bus: Bus) -> None:
        record = Reputation(
            key=warmup_key(NEW.address, "other"),
            scope="address",
            address=NEW.address,
            provider="other",
            warmup=state,
        )
        await bus.ensure_topics([REPUTATION.name])
        await bus.publish([REPUTATION.out(record)])

    async with DnsServer(mx_records("dest.test", (10, MX))) as dns, SmtpSink(MX) as sink:
        section = deliverer_section(dns, sink.port, retry={"tiers": ["1s", "1h"]})
        async with running_deliverer(
            tmp_path,
            section,
            kafka=kafka,
            pools=pools,
            clock=lambda: midnight - 30,
            before=publish_state,
        ) as d:
            await d.send(*(delivery(f"r{i}@dest.test") for i in range(5)))
            delivered = await d.wait_events(EventKind.DELIVERED, 2, timeout=60)
            waiting = await read_topic(d.bus, retry_topic("1s"), 3, timeout=60)
            await d.settle(timeout=60)
            held = d.ctx.registry.get_sample_value(
                "postline_deliverer_held_total", {"reason": "warmup_allowance"}
            )
            left = d.ctx.registry.get_sample_value(
                "postline_deliverer_warmup_allowance_left",
                {"source": NEW.address, "provider": "other"},
            )
    assert len(d.of(EventKind.DELIVERED)) == 2
    assert {e.source for e in delivered} == {NEW.address}
    assert [source_of(m) for m in sink.messages] == [(NEW.address, NEW.ehlo_name)] * 2
    assert [(w.not_before, w.attempt) for w in waiting] == [(midnight, 0)] * 3
    assert not d.of(EventKind.DEFERRED)  # waiting is not an attempt
    assert (held, left) == (3.0, 0.0)


async def test_the_excess_overflows_to_the_configured_pool(
    tmp_path: Path, kafka: KafkaConfig | None
) -> None:
    pools = PoolsConfig(
        default="new",
        pool={
            "new": Pool(addresses=[NEW], over_allowance="overflow", overflow="warm"),
            "warm": Pool(addresses=[WARM]),
        },
        warmup=WarmupConfig(schedule=(2, 4)),  # no state published: the first step
    )
    noon = 20_000 * DAY + 43_200.0
    async with (
        DnsServer(mx_records("dest.test", (10, MX))) as dns,
        SmtpSink(MX) as sink,
        running_deliverer(
            tmp_path,
            deliverer_section(dns, sink.port),
            kafka=kafka,
            pools=pools,
            clock=lambda: noon,
        ) as d,
    ):
        await d.send(*(delivery(f"r{i}@dest.test") for i in range(5)))
        await d.wait_events(EventKind.DELIVERED, 5, timeout=60)
        await d.settle(timeout=60)
        overflowed = d.ctx.registry.get_sample_value(
            "postline_deliverer_warmup_overflow_total", {"pool": "new"}
        )
    sources = sorted(source_of(m) for m in sink.messages)
    assert sources == [(NEW.address, NEW.ehlo_name)] * 2 + [(WARM.address, WARM.ehlo_name)] * 3
    assert (
        sorted(e.source for e in d.of(EventKind.DELIVERED))
        == [NEW.address] * 2 + [WARM.address] * 3
    )
    assert overflowed == 3.0
