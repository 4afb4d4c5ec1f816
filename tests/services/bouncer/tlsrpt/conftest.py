"""A bouncer with TLS-RPT on, on a real bus (Kafka and the embedded one), with a test DNS
server publishing ``_smtp._tls`` records, an HTTPS capture server for reports and a clock
the test moves."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from services.bouncer.stage import BouncerStage, create
from shared.bus.base import Bus
from shared.config import load_config
from shared.runtime.stage import StageContext
from shared.wire.records import Event, EventKind, TlsRpt
from shared.wire.topics import (
    DEAD,
    EVENTS,
    OUTBOUND,
    QUARANTINE,
    SUBMITTED,
    SUPPRESSIONS,
    TENANTS,
    TLSRPT,
)
from testing.buses import bus_of_kind
from testing.pki import Pki, make_pki
from testing.stage import stage_context
from tests.services.bouncer.conftest import write_config

DEADLINE = 60.0  # guards against a hang only
DELAY = 3600.0  # [bouncer.tlsrpt] send_delay in these tests
#: Every topic the bouncer reads or writes, made before it starts as `postline topics
#: create` would (Kafka: a missing one is created only by some of its readers).
BOUNCER_TOPICS = (EVENTS, TLSRPT, SUBMITTED, SUPPRESSIONS, TENANTS, QUARANTINE, OUTBOUND, DEAD)


class Clock:
    """The injected clock: the test sets ``now``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Capture:
    """An HTTPS server on 127.0.0.1 recording every POST; ``fail_next`` answers 500."""

    pki: Pki
    port: int = 0
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    accepted: list[bytes] = field(default_factory=list)
    fail_next: int = 0
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}/{path}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{path}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.pki.cert), str(self.pki.key))
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((request.match_info["path"], dict(request.headers), body))
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=500, text="failing on purpose")
        self.accepted.append(body)
        return web.Response(status=201)

    def reports(self) -> list[dict[str, Any]]:
        """The accepted reports, decompressed and parsed."""
        return [json.loads(gzip.decompress(body)) for body in self.accepted]


@pytest.fixture
async def capture(tmp_path: Path) -> AsyncIterator[Capture]:
    server = Capture(make_pki(tmp_path / "pki"))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(params=[pytest.param("kafka", marks=pytest.mark.kafka), "embedded"])
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    opened = bus_of_kind(request.param, request, tmp_path, "tlsrpt", partitions=4)
    await opened.start()
    await opened.ensure_topics([t.name for t in BOUNCER_TOPICS])
    yield opened
    await opened.close()


def tlsrpt_config(
    tmp_path: Path,
    ca: Path,
    dns_port: int,
    extra: str = "",
    from_address: str = "tlsrpt@relay.postline.test",
) -> Path:
    """The bouncer's test config with ``[bouncer.tlsrpt]`` on."""
    path = write_config(tmp_path)
    path.write_text(
        path.read_text()
        + f"""
[bouncer.tlsrpt]
enabled = true
organization_name = "Postline Test"
contact_info = "tlsrpt@relay.postline.test"
submitter = "relay.postline.test"
from_address = "{from_address}"
send_delay = "{DELAY:g}s"
check_interval = "0.1s"
retry_backoff = 0
ca_file = "{ca}"
nameservers = ["127.0.0.1:{dns_port}"]
dns_timeout = "5s"
{extra}
"""
    )
    return path


@dataclass
class Running:
    ctx: StageContext
    stage: BouncerStage
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.ctx.stopping.set()
        await asyncio.wait_for(self.task, DEADLINE)


async def start(bus: Bus, config: Path, clock: Clock) -> Running:
    """A started bouncer on ``bus`` (its events consumer joined)."""
    ctx = stage_context("bouncer", load_config(config, environ={}), bus)
    stage = await create(ctx, clock=clock)
    task = asyncio.create_task(stage.run(ctx))
    await asyncio.wait_for(ctx.wait_ready(), DEADLINE)
    return Running(ctx, stage, task)


def session(
    domain: str,
    at: float,
    failure: str = "",
    *,
    mx: str = "mx1.dest.test",
    address: str = "192.0.2.10",
) -> Event:
    """A tls_session event as the deliverer writes it (keyed by the recipient domain)."""
    return Event(
        kind=EventKind.TLS_SESSION,
        at=at,
        domain=domain,
        mx=mx,
        mx_address=address,
        source="198.51.100.7",
        tls="" if failure else "TLSv1.3",
        tls_cipher="" if failure else "TLS_AES_256_GCM_SHA384",
        tls_security="mta-sts",
        tls_verified=not failure,
        tls_failure=failure,
        tls_policy_domain=domain,
        tls_policy_type="sts",
        tls_policy=("version: STSv1", "mode: enforce", f"mx: *.{domain}", "max_age: 86400"),
        tls_mx_patterns=(f"*.{domain}",),
        detail=f"{failure} at {mx}" if failure else "",
        stage="deliverer",
    )


async def publish(bus: Bus, events: list[Event]) -> None:
    await bus.publish([EVENTS.out(e) for e in events], timeout=DEADLINE)


async def table(bus: Bus) -> dict[str, TlsRpt]:
    found = await bus.read_table(TLSRPT.name)
    return {key.decode(): TLSRPT.decode(value) for key, value in found.items()}


async def totals(bus: Bus, domain: str) -> tuple[int, int]:
    """(successful, failed) on postline.tlsrpt for ``domain``, every partition added."""
    ok = failed = 0
    for record in (await table(bus)).values():
        if record.state == "counts" and record.domain == domain:
            ok += sum(p.successful for p in record.policies)
            failed += sum(p.failed for p in record.policies)
    return ok, failed


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)
