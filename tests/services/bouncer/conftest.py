"""A running bouncer on the embedded bus: real SMTP and HTTP sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.bouncer.stage import BouncerStage, create
from shared.bus.base import TopicPartition
from shared.bus.embedded import EmbeddedBus
from shared.config import Config, load_config
from shared.runtime.httpserver import HttpServer
from shared.runtime.stage import StageContext
from shared.wire.records import Record
from shared.wire.topics import Topic
from testing.stage import stage_context

SECRET = b"verp-secret-for-tests-0123456789"
ADMIN_TOKEN = "admin-token-for-tests-0123456789"
BOUNCE_DOMAIN = "bounces.postline.test"


def write_config(tmp_path: Path) -> Path:
    """A config file for the bouncer on an embedded bus in ``tmp_path``."""
    (tmp_path / "verp.key").write_bytes(SECRET)
    (tmp_path / "admin.token").write_text(ADMIN_TOKEN + "\n")
    path = tmp_path / "postline.toml"
    path.write_text(
        f"""
[embedded]
path = "{tmp_path / "bus.db"}"
partitions = 2
[http]
port = 0
[bouncer]
listen_port = 0
bounce_domain = "{BOUNCE_DOMAIN}"
secret_file = "{tmp_path / "verp.key"}"
admin_token_file = "{tmp_path / "admin.token"}"
admin_port = 0
soft_bounce_limit = 2
[bouncer.dsn]
postmaster = "postmaster@relay.postline.test"
reporting_mta = "relay.postline.test"
"""
    )
    return path


@dataclass
class Running:
    """The bouncer under test and the sockets to reach it."""

    config: Config
    bus: EmbeddedBus
    ctx: StageContext
    stage: BouncerStage
    http_port: int

    @property
    def smtp_port(self) -> int:
        """The bounce-domain SMTP listener's port."""
        return self.stage.port

    @property
    def admin_port(self) -> int:
        """The admin API's own listener."""
        assert self.stage.admin is not None
        return self.stage.admin.port


async def wait_for_records(
    bus: EmbeddedBus,
    topic: Topic[Record],
    found: Callable[[list[Record]], bool],
    timeout: float = 10.0,
) -> list[Record]:
    """Poll ``topic`` until ``found`` accepts what is there (deadline, never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        records: list[Record] = []
        count = (await bus.ensure_partitions([topic.name]))[topic.name]
        positions = {TopicPartition(topic.name, p): 0 for p in range(count)}
        for message in await bus.read_from(positions, 10_000):
            if message.value is not None:
                records.append(topic.decode(message.value))
        if found(records):
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic.name}: condition not met; have {records!r}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def config_path(tmp_path: Path) -> Path:
    """The test config file."""
    return write_config(tmp_path)


@pytest.fixture
async def running(config_path: Path) -> AsyncIterator[Running]:
    """A started bouncer (intake, HTTP routes, events consumer)."""
    config = load_config(config_path)
    bus = EmbeddedBus(config.core.embedded)
    await bus.start()
    registry = CollectorRegistry()
    ctx = stage_context("bouncer", config, bus, registry=registry)
    stage = await create(ctx)
    http = HttpServer(config.core.http, registry, lambda: {"bouncer": ctx.ready}, [ctx.http])
    await http.start()
    task = asyncio.create_task(stage.run(ctx))
    await asyncio.wait_for(ctx.wait_ready(), 10)
    try:
        yield Running(config, bus, ctx, stage, http.port)
    finally:
        ctx.stopping.set()
        await asyncio.wait_for(task, 30)
        await http.close()
        await bus.close()
