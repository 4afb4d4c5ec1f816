"""A running bouncer (the real stage, its process HTTP port) on the embedded bus or Kafka,
with the tracking settings a test asks for, and tokens as the signer writes them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.bouncer.stage import BouncerStage, create
from shared.bus.base import Bus
from shared.config import load_config
from shared.runtime.httpserver import HttpServer
from shared.runtime.stage import StageContext
from shared.wire.records import Event
from shared.wire.tokens import TrackingToken, tracking_token
from shared.wire.topics import DEAD, EVENTS, OUTBOUND, QUARANTINE, SUPPRESSIONS, TENANTS
from testing.buses import bus_of_kind
from testing.eventschema import assert_published
from testing.stage import stage_context
from testing.topics import read_all
from tests.services.bouncer.conftest import SECRET, write_config

MSGID = "0123456789abcdef0123456789abcdef"
RECIPIENT = "Reader@Customer.Example"
TENANT = "shop"
DEADLINE = 60.0  # guards against a hang only


def token(
    link: int = 0,
    url: str = "",
    *,
    sent_ago: float = 3600.0,
    secret: bytes = SECRET,
    recipient: str = RECIPIENT,
    message_id: str = MSGID,
) -> str:
    """A token as the signer writes it (pixel: link 0; a link: its number and URL)."""
    return tracking_token(
        secret,
        TrackingToken(
            message_id=message_id,
            recipient=recipient,
            tenant=TENANT,
            sent_at=int(time.time() - sent_ago),
            link=link,
            url=url,
        ),
    )


@dataclass
class Tracked:
    """The bouncer under test."""

    bus: Bus
    ctx: StageContext
    stage: BouncerStage
    base: str  # http://127.0.0.1:<process port>

    def metric(self, name: str, **labels: str) -> float:
        """A sample of the stage's registry (0 when never counted)."""
        return self.ctx.registry.get_sample_value(name, labels) or 0.0

    async def events(self, count: int) -> list[Event]:
        """The opened and clicked events on postline.events once there are ``count``."""
        end = time.monotonic() + DEADLINE
        while True:
            found = [
                event
                for message in await read_all(self.bus, EVENTS.name)
                if message.value is not None
                and (event := EVENTS.decode(message.value)).kind in ("opened", "clicked")
            ]
            if len(found) >= count:
                assert_published(found)  # as docs/events.schema.json says webhooks get them
                return found
            assert time.monotonic() < end, f"{len(found)} tracking events, wanted {count}"
            await asyncio.sleep(0.05)


@asynccontextmanager
async def running(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tracking: str = "",
    bus: Bus | None = None,
) -> AsyncIterator[Tracked]:
    """Start the bouncer with ``[bouncer.tracking]`` set to ``tracking`` (TOML lines)."""
    path = write_config(tmp_path)
    path.write_text(path.read_text() + "[bouncer.tracking]\n" + tracking)
    config = load_config(path, environ={})
    bus = bus or bus_of_kind(kind, request, tmp_path, "bouncer-tracking")
    await bus.start()
    await bus.ensure_topics(
        [EVENTS.name, SUPPRESSIONS.name, OUTBOUND.name, DEAD.name, TENANTS.name, QUARANTINE.name]
    )
    registry = CollectorRegistry()
    ctx = stage_context("bouncer", config, bus, registry=registry)
    stage = await create(ctx)
    http = HttpServer(config.core.http, registry, lambda: {"bouncer": ctx.ready}, [ctx.http])
    await http.start()
    task = asyncio.create_task(stage.run(ctx))
    try:
        await asyncio.wait_for(ctx.wait_ready(), DEADLINE)
        yield Tracked(bus, ctx, stage, f"http://127.0.0.1:{http.port}")
    finally:
        ctx.stopping.set()
        await asyncio.wait_for(task, DEADLINE)
        await http.close()
        await bus.close()


@pytest.fixture
async def tracked(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Tracked]:
    """The bouncer on the embedded bus with the default tracking settings."""
    async with running("embedded", request, tmp_path) as bouncer:
        yield bouncer
