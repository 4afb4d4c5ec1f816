"""Session limits over real sockets: sessions per address, timeouts, metrics."""

from __future__ import annotations

import asyncio
import time

from tests.services.ingest.client import Raw, until
from tests.services.ingest.conftest import StartIngest


async def test_sessions_per_ip(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(limits={"max_sessions_per_ip": 2})
    port = ingest.port("relay")
    first, second = await Raw.open(port), await Raw.open(port)
    assert (await first.reply())[0] == 220 and (await second.reply())[0] == 220
    third = await Raw.open(port)
    assert await third.reply() == (421, "4.7.0 Too many connections from your address")
    assert await third.closed()
    await first.cmd("QUIT")
    assert await first.closed()
    # The slot frees once the server has seen the session end: poll with a deadline.
    deadline = time.monotonic() + 10
    while True:
        fourth = await Raw.open(port)
        code, _ = await fourth.reply()
        if code == 220:
            break
        assert time.monotonic() < deadline, "the freed slot was never reused"
        await fourth.close()
        await asyncio.sleep(0.02)
    for raw in (first, second, fourth):
        await raw.close()


S = "postline_ingest_sessions_total"


async def test_idle_client_gets_421_on_timeout(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(limits={"command_timeout": "0.3s"})
    raw = await Raw.open(ingest.port("relay"))
    assert (await raw.reply())[0] == 220
    assert await raw.reply() == (421, "4.4.2 Timeout exceeded, closing connection")
    assert await raw.closed()
    await raw.close()  # the server reads on briefly after its 421 (server.LINGER)
    labels = {"listener": "relay", "result": "timeout"}
    await until(lambda: ingest.ctx.registry.get_sample_value(S, labels) == 1.0)


async def test_metrics_count_sessions_and_results(start_ingest: StartIngest) -> None:
    ingest = await start_ingest()
    raw = await Raw.open(ingest.port("relay"))
    await raw.reply()
    await raw.cmd("EHLO c.test")
    await raw.cmd("MAIL FROM:<a@x.test>")
    assert (await raw.cmd("RCPT TO:<b@y.test>"))[0] == 554
    assert (await raw.cmd("QUIT"))[0] == 221
    assert await raw.closed()
    registry = ingest.ctx.registry
    assert (
        registry.get_sample_value(
            "postline_ingest_messages_total", {"result": "rejected", "check": "relay"}
        )
        == 1.0
    )
    assert (
        registry.get_sample_value(
            "postline_ingest_sessions_total", {"listener": "relay", "result": "ok"}
        )
        == 1.0
    )
    assert (
        registry.get_sample_value("postline_ingest_sessions_active", {"listener": "relay"}) == 0.0
    )
