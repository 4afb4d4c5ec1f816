"""Stopping: SIGTERM finishes SMTP transactions in flight; SIGKILL skips nothing."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import pytest

from shared.bus.base import Bus
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.config import EmbeddedConfig, KafkaConfig
from shared.wire.records import Delivery, EventKind, new_id
from shared.wire.topics import DEAD, EVENTS, OUTBOUND
from testing.dnsserver import LOOPBACKS, DnsServer, mx_records
from testing.smtpsink import SmtpSink, free_port
from tests.services.deliverer.harness import (
    deliverer_section,
    delivery,
    read_topic,
    running_deliverer,
)

ROOT = Path(__file__).resolve().parents[3]


async def _poll(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_stop_finishes_transactions_in_flight(tmp_path: Path) -> None:
    port = free_port(LOOPBACKS[:1])
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
        running_deliverer(tmp_path, deliverer_section(dns, port)) as d,
    ):
        sink.data_delay = 1.0
        await d.send(delivery("a@dest.test"), delivery("b@dest.test"))
        await _poll(lambda: sink.in_data == 2, 10, "two transactions in DATA")
        d.ctx.stopping.set()  # what SIGTERM does
        assert d.task is not None
        await asyncio.wait_for(d.task, 15)
        assert sorted(sink.recipients()) == ["a@dest.test", "b@dest.test"]
        events = await read_topic(d.bus, EVENTS, 4)
        assert (
            sorted(e.kind for e in events)
            == [EventKind.DELIVERED] * 2 + [EventKind.TLS_SESSION] * 2
        )  # one connection per transaction in flight
        # Offsets were committed with the events: nothing is redone after the restart.
        outbound = d.bus.consumer("postline-deliverer", [OUTBOUND.name])
        await outbound.start()
        assert await outbound.fetch(10, timeout=0.2) == []
        await outbound.stop()


@pytest.mark.slow
@pytest.mark.parametrize("bus_kind", ["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
async def test_sigkill_mid_batch_skips_nothing(
    tmp_path: Path, bus_kind: str, request: pytest.FixtureRequest
) -> None:
    port = free_port(LOOPBACKS[:1])
    rcpts = [f"r{i}@dest.test" for i in range(30)]
    kafka: KafkaConfig | None = None
    instance = f"kill-{new_id()[:8]}"
    if bus_kind == "kafka":
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        kafka = KafkaConfig(
            bootstrap=bootstrap, topic_prefix=request.getfixturevalue("topic_prefix")
        )
    async with (
        DnsServer(mx_records("dest.test", (10, LOOPBACKS[0]))) as dns,
        SmtpSink(LOOPBACKS[0], port) as sink,
    ):
        section = deliverer_section(dns, port, defaults={"max_connections": 3})
        await _preload(tmp_path, kafka, [delivery(r) for r in rcpts])
        sink.data_delay = 0.05
        extra = []
        if kafka is not None:
            extra = [
                json.dumps(
                    {
                        "bootstrap": kafka.bootstrap,
                        "topic_prefix": kafka.topic_prefix,
                        "instance": instance,
                    }
                )
            ]
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.services.deliverer.kill_target",
            str(tmp_path),
            json.dumps(section),
            *extra,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert child.stdout is not None
            assert (await asyncio.wait_for(child.stdout.readline(), 60)).strip() == b"ready"
            await _poll(lambda: len(sink.messages) >= 8 and sink.in_data > 0, 60, "mid-batch")
        finally:
            child.send_signal(signal.SIGKILL)
            await child.wait()
        killed_at = len(sink.messages)
        assert killed_at < len(rcpts)  # really mid-batch
        sink.data_delay = 0.0
        async with running_deliverer(tmp_path, section, kafka=kafka, instance=instance) as d:
            await _poll(lambda: set(sink.recipients()) == set(rcpts), 90, "every recipient")
            await d.settle(timeout=60)
            await d.wait_events(EventKind.DELIVERED, len(rcpts), timeout=60)
            delivered = {e.recipient for e in d.of(EventKind.DELIVERED)}
            assert delivered == set(rcpts)


async def _preload(tmp_path: Path, kafka: KafkaConfig | None, deliveries: list[Delivery]) -> None:
    bus: Bus
    if kafka is None:
        bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=2))
    else:
        bus = KafkaBus(kafka, instance=f"preload-{new_id()[:8]}")
    await bus.start()
    await bus.ensure_topics([OUTBOUND.name, EVENTS.name, DEAD.name])
    await bus.publish([OUTBOUND.out(d) for d in deliveries])
    await bus.close()
