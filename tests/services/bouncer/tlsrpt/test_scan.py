"""The sender reads postline.tlsrpt only when it may hold work: a day closed since the last
read, partitions newly owned (``rescan``), or a retry due; not on every tick."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.bouncer.metrics import TlsRptMetrics
from services.bouncer.tlsrpt.config import TlsRptConfig
from services.bouncer.tlsrpt.counts import DAY, day_start
from services.bouncer.tlsrpt.https import HttpsReporter
from services.bouncer.tlsrpt.sender import ReportSender
from shared.bus.embedded import EmbeddedBus
from shared.config import Duration, EmbeddedConfig
from shared.fcrdns import resolver_for
from shared.wire.topics import TLSRPT
from tests.services.bouncer.tlsrpt.conftest import Clock

START = day_start("2026-01-20")
DELAY = 7200.0


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
    opened = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=2))
    await opened.start()
    await opened.ensure_topics([TLSRPT.name])
    yield opened
    await opened.close()


async def owns_nothing(domain: str) -> bool:
    return False


async def test_the_table_is_read_when_it_may_hold_work(bus: EmbeddedBus) -> None:
    clock = Clock(START + DAY + DELAY + 10)  # the 20th closed 10 seconds ago
    sender = ReportSender(
        TlsRptConfig(enabled=True, send_delay=Duration(DELAY)),
        bus=bus,
        owns=owns_nothing,
        clock=clock,
        resolver=resolver_for(["127.0.0.1:9"], 1.0),
        https=HttpsReporter(timeout=1.0, ca_file=None, user_agent="test"),
        metrics=TlsRptMetrics(CollectorRegistry()),
        log=logging.getLogger("test"),
        publish_timeout=5.0,
    )
    assert sender.scan_due()  # never read yet
    assert await sender.tick() == 0
    assert not sender.scan_due()
    clock.now += DAY - 20  # still the 20th as the newest closed day
    assert not sender.scan_due()
    clock.now += 20  # the 21st closes
    assert sender.scan_due()
    await sender.tick()
    assert not sender.scan_due()
    sender.rescan()  # partitions newly owned
    assert sender.scan_due()
