"""A real webhook receiver for tests and the bench: aiohttp on loopback, HTTPS with a test CA.

Each path is one endpoint with a behaviour that a test changes while it runs: answer 200,
fail (500) for the next N requests, or hang until released. Every request is recorded with
its headers, body and when it came; the accepted events' ids are collected in order, and
``wait_for`` waits (without polling the clock against a figure) until a condition holds.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from testing.pki import Pki


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived

    def events(self) -> list[dict[str, Any]]:
        """The event objects it carried (one, or a batch's array)."""
        data = json.loads(self.body)
        return data if isinstance(data, list) else [data]


@dataclass
class Behaviour:
    """What one path answers."""

    fail_next: int = 0  # answer 500 to this many requests first
    hang: asyncio.Event | None = None  # wait for this before answering (None: at once)
    accepted: list[str] = field(default_factory=list)  # event ids answered 200, in order
    requests: list[Received] = field(default_factory=list)
    hanging: int = 0  # requests waiting on ``hang`` now


class Receiver:
    """The receiver; use as ``async with Receiver(pki) as r``."""

    def __init__(self, pki: Pki | None) -> None:
        self.pki = pki
        self.paths: dict[str, Behaviour] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()

    def url(self, path: str) -> str:
        """The URL of ``path`` (https with a PKI, else http)."""
        scheme = "https" if self.pki is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    def behaviour(self, path: str) -> Behaviour:
        """The behaviour of ``path`` (created answering 200)."""
        return self.paths.setdefault(path, Behaviour())

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{path}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        context = None
        if self.pki is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.pki.cert), str(self.pki.key))
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for behaviour in self.paths.values():
            if behaviour.hang is not None:
                behaviour.hang.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        behaviour = self.behaviour(path)
        received = Received(path, dict(request.headers), await request.read(), time.time())
        behaviour.requests.append(received)
        await self._notify()
        if behaviour.hang is not None and not behaviour.hang.is_set():
            behaviour.hanging += 1
            await self._notify()
            try:
                await behaviour.hang.wait()
            finally:
                behaviour.hanging -= 1
        if behaviour.fail_next > 0:
            behaviour.fail_next -= 1
            await self._notify()
            return web.Response(status=500, text="failing on purpose")
        behaviour.accepted += [event["id"] for event in received.events()]
        await self._notify()
        return web.Response(status=204)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, condition: Callable[[], bool], timeout: float) -> None:
        """Wait until ``condition()`` holds; ``TimeoutError`` after ``timeout`` seconds."""

        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(condition)

        await asyncio.wait_for(wait(), timeout)
