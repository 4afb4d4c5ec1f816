"""Two bouncer replicas share the events partitions (Kafka, and the embedded bus): counts of
one policy domain spread over every partition, the second replica joining mid-day and taking
over partitions the first had counted; neither overwrites the other, and exactly one report
with the sum goes out once the day is over."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.bouncer.tlsrpt.counts import DAY, day_start
from shared.bus.base import Bus
from shared.wire.records import Event
from shared.wire.topics import EVENTS, OutRecord
from testing.buses import bus_of_kind
from testing.dnsserver import DnsServer
from tests.services.bouncer.tlsrpt.conftest import (
    BOUNCER_TOPICS,
    DELAY,
    Capture,
    Clock,
    session,
    start,
    table,
    tlsrpt_config,
    totals,
    until,
)

START = day_start("2026-09-09")
PARTITIONS = 4


@pytest.fixture(params=[pytest.param("kafka", marks=pytest.mark.kafka), "embedded"])
async def buses(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Bus, Bus]]:
    """Each replica's bus: two Kafka clients, or the one embedded bus of the process."""
    first = bus_of_kind(request.param, request, tmp_path, "tlsrpt-a", partitions=PARTITIONS)
    await first.start()
    second = first
    if request.param == "kafka":
        second = bus_of_kind("kafka", request, tmp_path, "tlsrpt-b")
        await second.start()
    yield first, second
    if second is not first:
        await second.close()
    await first.close()


async def spread(bus: Bus, events: list[Event], tag: str) -> None:
    """Publish ``events`` under keys that spread them over every partition (as sessions of
    one policy domain reached through several recipient domains would be)."""
    await bus.publish(
        [
            OutRecord(EVENTS.name, f"{tag}-{i}".encode(), EVENTS.encode(e))
            for i, e in enumerate(events)
        ]
    )


async def test_two_replicas_count_their_partitions_and_one_sends(
    buses: tuple[Bus, Bus], tmp_path: Path, capture: Capture
) -> None:
    bus_a, bus_b = buses
    await bus_a.ensure_topics([t.name for t in BOUNCER_TOPICS])
    records = {"_smtp._tls.dest.test": [("TXT", f'"v=TLSRPTv1; rua={capture.url("r")}"')]}
    async with DnsServer(records) as dns:
        config = tlsrpt_config(tmp_path, capture.pki.ca, dns.port)
        clock = Clock(START + 60)
        first = await start(bus_a, config, clock)
        await spread(bus_a, [session("dest.test", START + 10) for _ in range(20)], "a")
        await spread(
            bus_a, [session("dest.test", START + 20, "tlsa-invalid") for _ in range(4)], "b"
        )

        async def first_counted() -> bool:
            return await totals(bus_a, "dest.test") == (20, 4)

        await until(first_counted, "the first replica counted every partition")
        second = await start(bus_b, config, clock)
        assert second.stage.tlsrpt is not None and first.stage.tlsrpt is not None

        async def split() -> bool:
            a, b = first.stage.tlsrpt, second.stage.tlsrpt
            assert a is not None and b is not None
            return bool(b.counter.owned) and not (a.counter.owned & b.counter.owned)

        await until(split, "the partitions split between the replicas")
        await spread(bus_a, [session("dest.test", START + 30) for _ in range(12)], "c")
        await spread(
            bus_a, [session("dest.test", START + 40, "tlsa-invalid") for _ in range(8)], "d"
        )

        async def all_counted() -> bool:
            return await totals(bus_a, "dest.test") == (32, 12)

        await until(all_counted, "both replicas' counts add up")
        counts = [r for r in (await table(bus_a)).values() if r.state == "counts"]
        assert len({r.partition for r in counts}) > 1

        clock.now = START + DAY + DELAY

        async def settled() -> bool:
            return any(r.state == "sent" for r in (await table(bus_a)).values())

        await until(settled, "the day settled")
        await second.stop()
        await first.stop()
    [report] = capture.reports()
    [policy] = report["policies"]
    assert policy["summary"] == {
        "total-successful-session-count": 32,
        "total-failure-session-count": 12,
    }
    [row] = policy["failure-details"]
    assert (row["result-type"], row["failed-session-count"]) == ("tlsa-invalid", 12)
