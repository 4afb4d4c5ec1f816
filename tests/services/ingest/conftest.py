"""A running ingest stage on a real bus, real sockets and a test CA, for the integration tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.ingest.main import STAGE
from services.ingest.stage import IngestStage
from services.ingest.users import add_user
from shared.bus.base import Bus
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.config import Config, CoreConfig, KafkaConfig, convert
from shared.errors import BusUnavailable
from shared.runtime.stage import StageContext
from shared.wire.records import Event, Record, Submission
from shared.wire.topics import EVENTS, SUBMITTED, SUPPRESSIONS, OutRecord, Topic
from testing.stage import stage_context
from tests.services.ingest.pki import Pki, make_pki

PASSWORD = "correct horse battery staple"
HOSTNAME = "mx.postline.test"


class FailingBus:
    """Wraps a bus; while ``failing`` is set, ``publish`` raises ``BusUnavailable``."""

    def __init__(self, inner: Bus) -> None:
        self.inner = inner
        self.failing = False

    async def publish(self, records: Sequence[OutRecord], timeout: float | None = None) -> None:
        if self.failing:
            raise BusUnavailable("test: bus down")
        await self.inner.publish(records, timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Running:
    """An ingest serving on ephemeral ports."""

    ctx: StageContext
    stage: IngestStage
    bus: Bus
    pki: Pki
    task: asyncio.Task[None]
    tmp: Path

    def port(self, listener: str) -> int:
        """The bound port of a listener."""
        return next(x.port for x in self.stage.listeners if x.config.name == listener)

    async def records(self, topic: Topic[Any], count: int, timeout: float = 15.0) -> list[Any]:
        """Wait (with a deadline) until ``topic`` holds at least ``count`` records; all of them."""
        return await self._read([topic], count, timeout)

    async def events(self, count: int, timeout: float = 15.0) -> list[Event]:
        """The events ingest recorded, once there are at least ``count``: those it published
        on ``postline.events`` (rejections, and those of messages not on their way) and those
        carried inside its Submissions for the signer to publish (``Submission.events``)."""
        found: list[Event] = []
        for record in await self._read([SUBMITTED, EVENTS], count, timeout, _events_in):
            found += record.events if isinstance(record, Submission) else [record]
        return found

    async def _read(
        self,
        topics: list[Topic[Any]],
        count: int,
        timeout: float,
        counted: Callable[[Any], int] = lambda record: 1,
    ) -> list[Any]:
        by_name = {topic.name: topic for topic in topics}
        consumer = self.bus.consumer(f"test-{time.monotonic_ns()}", list(by_name))
        await consumer.start()
        found: list[Record] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                batch = await consumer.fetch(timeout=0.2)
                found += [by_name[m.topic].decode(m.value) for m in batch if m.value is not None]
                if sum(map(counted, found)) >= count and not batch:
                    return found
                if time.monotonic() > deadline:
                    raise AssertionError(f"{list(by_name)}: {len(found)} records, wanted {count}")
        finally:
            await consumer.stop()

    async def stop(self) -> None:
        """Ask the stage to stop and wait for its drain."""
        self.ctx.stopping.set()
        await asyncio.wait_for(self.task, 30)


StartIngest = Callable[..., Awaitable[Running]]


def _events_in(record: Submission | Event) -> int:
    return len(record.events) if isinstance(record, Submission) else 1


def base_config(tmp: Path, pki: Pki, **ingest: Any) -> dict[str, Any]:
    """The config used by the tests, with ``ingest`` keys overridden."""
    section: dict[str, Any] = {
        "hostname": HOSTNAME,
        "listeners": [
            {"name": "submission", "port": 0, "mode": "submission"},
            {"name": "smtps", "port": 0, "mode": "implicit_tls"},
            {"name": "relay", "port": 0, "mode": "relay"},
        ],
        "tls": {"cert": str(pki.cert), "key": str(pki.key), "watch_interval": "0.1s"},
        "users_file": str(tmp / "users.json"),
    }
    section.update(ingest)
    return {
        "bus": {"publish_timeout": "5s"},
        "embedded": {"path": str(tmp / "bus.db"), "partitions": 2},
        "runtime": {"drain_timeout": "10s"},
        "ingest": section,
    }


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """The test CA and server certificate."""
    return make_pki(tmp_path)


@pytest.fixture
async def start_ingest(tmp_path: Path, pki: Pki) -> AsyncIterator[StartIngest]:
    """Start ingest(s) on the embedded bus; every one is stopped and its bus closed after."""
    started: list[tuple[Running, Bus]] = []
    users = tmp_path / "users.json"
    add_user(users, "alice", ["example.com"], PASSWORD)
    add_user(users, "bob", ["bob.test"], PASSWORD)

    async def start(
        wrap: Callable[[Bus], Bus] | None = None,
        drain_timeout: str = "3s",
        tls_watch: str = "0.1s",
        kafka: tuple[str, str] | None = None,
        embedded: dict[str, Any] | None = None,
        *,
        sections: dict[str, Any] | None = None,
        **ingest: Any,
    ) -> Running:
        raw = base_config(tmp_path, pki, **ingest)
        raw["embedded"].update(embedded or {})  # e.g. max_size: a disk that fills
        raw.update(sections or {})  # other sections, e.g. [secrets]
        raw["ingest"]["tls"]["watch_interval"] = tls_watch
        raw["runtime"]["drain_timeout"] = drain_timeout
        config = Config(convert(raw, CoreConfig, "test.toml"), "test.toml", {})
        inner: Bus
        if kafka is not None:  # (bootstrap, topic prefix)
            kafka_config = KafkaConfig(bootstrap=kafka[0], topic_prefix=kafka[1])
            inner = KafkaBus(kafka_config, instance=f"t{time.monotonic_ns()}")
            await inner.start()
            await inner.ensure_topics([t.name for t in (SUBMITTED, EVENTS, SUPPRESSIONS)])
        else:
            inner = EmbeddedBus(config.core.embedded)
            await inner.start()
        bus = wrap(inner) if wrap else inner
        ctx = stage_context("ingest", config, bus, instance="t")
        stage = await STAGE.create(ctx)
        assert isinstance(stage, IngestStage)
        task = asyncio.create_task(stage.run(ctx))
        await asyncio.wait_for(ctx.wait_ready(), 10)
        running = Running(ctx, stage, bus, pki, task, tmp_path)
        started.append((running, inner))
        return running

    yield start
    for running, inner in started:
        if not running.task.done():
            await running.stop()
        await inner.close()
