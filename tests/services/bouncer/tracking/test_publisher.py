"""The background line to postline.events: held clicks flagged as a whole burst, bounds,
drops counted; on a real embedded bus, with a clock the test moves (no waiting on time)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.bouncer.metrics import TrackingMetrics
from services.bouncer.tracking.machine import ClickBursts
from services.bouncer.tracking.publisher import TrackingPublisher
from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig
from shared.wire.records import Event, EventKind
from shared.wire.topics import EVENTS
from testing.faultybus import FaultyBus
from testing.topics import read_all

MSGID = "0123456789abcdef0123456789abcdef"
LOG = logging.getLogger("test.tracking")


class Clock:
    """A monotonic clock the test sets."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[FaultyBus]:
    inner = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=2))
    faulty = FaultyBus(inner)
    await faulty.start()
    await faulty.ensure_topics([EVENTS.name])
    yield faulty
    await faulty.close()


def click(recipient: str, link: int, at: float, *, machine: bool = False) -> Event:
    return Event(
        kind=EventKind.CLICKED,
        message_id=MSGID,
        at=at,
        recipient=recipient,
        link=link,
        url=f"https://shop.example/{link}",
        agent="browser",
        machine=machine,
    )


def publisher(
    bus: FaultyBus, clock: Clock, registry: CollectorRegistry, *, max_pending: int = 100
) -> TrackingPublisher:
    return TrackingPublisher(
        bus,
        5.0,
        ClickBursts(3, 2.0, 100),
        TrackingMetrics(registry),
        LOG,
        max_pending=max_pending,
        clock=clock,
    )


async def published(bus: FaultyBus) -> list[Event]:
    return [EVENTS.decode(m.value) for m in await read_all(bus, EVENTS.name) if m.value]


async def test_a_burst_is_flagged_whole_first_clicks_included(bus: FaultyBus) -> None:
    clock, registry = Clock(), CollectorRegistry()
    line = publisher(bus, clock, registry)
    for event in (
        click("scanned@customer.example", 1, 100.0),
        click("scanned@customer.example", 2, 100.3),
        click("person@customer.example", 1, 100.4),
        click("scanned@customer.example", 3, 100.9),
    ):
        line.emit(event)
    assert line.pending == 4
    clock.now += 2.0  # every hold is over
    line.close()
    await line.run()
    found = sorted((e.recipient, e.link, e.machine) for e in await published(bus))
    assert found == [
        ("person@customer.example", 1, False),
        ("scanned@customer.example", 1, True),
        ("scanned@customer.example", 2, True),
        ("scanned@customer.example", 3, True),
    ]
    assert (
        registry.get_sample_value(
            "postline_bouncer_clicks_total", {"agent": "browser", "who": "machine"}
        )
        == 3
    )
    assert line.pending == 0


async def test_closing_publishes_held_clicks_at_once(bus: FaultyBus) -> None:
    clock, registry = Clock(), CollectorRegistry()
    line = publisher(bus, clock, registry)
    line.emit(click("person@customer.example", 1, 100.0))
    line.close()  # the hold is not over: published all the same
    await line.run()
    assert [e.link for e in await published(bus)] == [1]


async def test_past_max_pending_new_events_are_dropped_and_counted(bus: FaultyBus) -> None:
    clock, registry = Clock(), CollectorRegistry()
    line = publisher(bus, clock, registry, max_pending=2)
    for link in (1, 2, 3):
        line.emit(click("person@customer.example", link, 100.0 + link * 60))
    assert line.pending == 2
    assert registry.get_sample_value("postline_bouncer_tracking_events_pending") == 2
    line.close()
    await line.run()
    line.emit(click("person@customer.example", 4, 400.0))  # after the drain
    assert sorted(e.link for e in await published(bus)) == [1, 2]
    dropped = "postline_bouncer_tracking_events_dropped_total"
    assert registry.get_sample_value(dropped, {"reason": "full"}) == 1
    assert registry.get_sample_value(dropped, {"reason": "stopped"}) == 1


async def test_a_bus_failure_drops_and_counts_after_retries(bus: FaultyBus) -> None:
    clock, registry = Clock(), CollectorRegistry()
    line = publisher(bus, clock, registry)
    line.emit(click("person@customer.example", 1, 100.0))
    bus.switch.failing = True
    line.close()
    await line.run()
    assert bus.switch.refused == 3  # ATTEMPTS
    assert (
        registry.get_sample_value(
            "postline_bouncer_tracking_events_dropped_total", {"reason": "bus"}
        )
        == 1
    )
    bus.switch.failing = False
    assert await published(bus) == []
