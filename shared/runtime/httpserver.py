"""HTTP listeners on aiohttp: ``/metrics``, ``/healthz``, ``/readyz`` and the stages' routes.

HTTP parsing is aiohttp's (its parser refuses request smuggling: two ``Content-Length``
headers, ``Content-Length`` with ``Transfer-Encoding``, bare LF in headers, over-long lines).
This module owns what aiohttp leaves to the application, so that hostile clients cannot make
the process hold unbounded memory:

- a cap on open connections per listener (:data:`MAX_CONNECTIONS`): past it a new connection
  gets ``503`` and is closed before anything is read. aiohttp has no such cap, and
  ``TCPSite`` no hook for one, so the listener is our own ``loop.create_server`` around the
  ``AppRunner``'s protocol factory (the documented low-level server);
- bodies read only by a handler that wants one, after routing and its own checks, up to the
  route's ``max_body`` (413 past it) and within :data:`BODY_TIMEOUT` (408); a refused request
  whose body was not read closes the connection instead of draining the body;
- an idle limit (:data:`KEEPALIVE_TIMEOUT`), which aiohttp also applies from the moment a
  connection opens, so a client trickling its first request's headers is closed too; header
  limits are aiohttp's (8190 bytes per line and field) with at most :data:`MAX_HEADERS`.

It does not do TLS (put it behind the cluster network or a proxy) and does not route by host.
A stage adds routes through ``StageContext.http`` (served on the process port by
:class:`HttpServer`) or serves a router apart on its own :class:`HttpListener` (the bouncer's
admin API); readiness comes from the stage contexts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shared.config import HttpConfig
from shared.errors import ListenError
from shared.runtime.http import BodyTooLarge, HttpRequest, HttpResponse, Route, Router
from shared.runtime.metricsmerge import merge_expositions

log = logging.getLogger("postline.http")

MAX_CONNECTIONS = 100  # open connections per listener (scrapes, probes and a few callers)
MAX_HEADERS = 64  # header lines per request (aiohttp's default is 128)
KEEPALIVE_TIMEOUT = 15.0  # seconds a connection may be idle, first request included
BODY_TIMEOUT = 10.0  # seconds for a body to arrive once a handler asks for it
HANDLER_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 5.0  # requests in progress at close get this long

#: Who is ready: stage name -> whether it serves now (``StageContext.ready``).
ReadinessProbe = Callable[[], dict[str, bool]]

#: The ``process`` label of this process's own samples when companions' are merged in.
OWN_PROCESS = "run"


class Companions(Protocol):
    """Processes the port answers for (``shared.runtime.children.StageProcesses``)."""

    async def readiness(self) -> dict[str, bool]:
        """Per stage: ready."""
        ...

    async def scrape(self) -> list[tuple[str, bytes]]:
        """(process name, metrics exposition) of each reachable process."""
        ...


_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 21\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many connections\n"
)


class _BodyTimeout(Exception):
    """The body did not arrive within :data:`BODY_TIMEOUT` (answered 408)."""


class _ConnectionCap(asyncio.Protocol):
    """Wraps aiohttp's per-connection protocol; refuses the connection past the cap.

    The decision is taken in ``connection_made``, which asyncio calls in accept order, so
    the count is exact even for a burst of accepts (counting in the factory would not be).
    """

    def __init__(self, listener: HttpListener, inner: asyncio.Protocol) -> None:
        self._listener = listener
        self._inner: asyncio.Protocol | None = inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._listener.open_connections >= self._listener.max_connections:
            self._inner = None  # never started: holds no buffer
            self._listener.refused += 1
            assert isinstance(transport, asyncio.Transport)
            transport.write(_BUSY)
            transport.close()
            return
        self._listener.open_connections += 1
        assert self._inner is not None
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is not None:
            self._listener.open_connections -= 1
            self._inner.connection_lost(exc)
            self._inner = None

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class HttpListener:
    """Serves :class:`Router` routes on one address; ``key`` names it in errors."""

    def __init__(
        self,
        host: str,
        port: int,
        routers: Sequence[Router],
        *,
        key: str,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = KEEPALIVE_TIMEOUT,
    ) -> None:
        self.host = host
        self._port = port
        self.key = key
        self.max_connections = max_connections
        self.open_connections = 0
        self.refused = 0  # connections turned away at the cap
        self._idle_timeout = idle_timeout
        self._routers = list(routers)
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one when the config said 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the HTTP listener is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and start accepting; raises ``ListenError`` naming the key if it cannot."""
        # Routes are looked up per request, not frozen into aiohttp's router here: the port is
        # bound before the stages are created (a busy port must fail the start early), and
        # stages add their routes while they are created. Bodies are read by _read_body with
        # each route's own limit, never by aiohttp's client_max_size.
        app = web.Application()
        # [\s\S], not ".": a percent-encoded CR/LF still reaches the handler, which refuses it.
        app.router.add_route("*", r"/{path:[\s\S]*}", self._dispatch)
        runner = web.AppRunner(
            app,
            access_log=None,  # one line per scrape would drown the stage's own logs
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            keepalive_timeout=self._idle_timeout,
            lingering_time=0,  # a body nobody read closes the connection, never drained
            max_headers=MAX_HEADERS,
        )
        await runner.setup()
        factory = runner.server
        assert factory is not None
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _ConnectionCap(self, factory()),
                self.host,
                self._port,
                reuse_address=True,
            )
        except OSError as exc:
            await runner.cleanup()
            raise ListenError(self.key, self.host, self._port, exc.strerror or str(exc)) from exc
        self._runner = runner
        log.info("http listening", extra={"key": self.key, "host": self.host, "port": self.port})

    async def _dispatch(self, aio: web.Request) -> web.StreamResponse:
        """Find the route for the request now: 404 for no path, 405 for another method."""
        candidates = [route for router in self._routers for route in router.match(aio.path)]
        if not candidates:
            return _closing(_error(404, "not found"), aio)
        for route in candidates:
            if route.method == aio.method:
                return await _serve(route, aio)
        allowed = ", ".join(sorted({route.method for route in candidates}))
        return _closing(_error(405, "method not allowed"), aio, {"Allow": allowed})

    async def close(self) -> None:
        """Stop accepting, let requests in progress finish (or cut them), close connections."""
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


class HttpServer(HttpListener):
    """The process port (``[http]``): the built-in endpoints plus the stages' routes."""

    def __init__(
        self,
        config: HttpConfig,
        registry: CollectorRegistry,
        readiness: ReadinessProbe,
        routers: Sequence[Router] = (),
        *,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = KEEPALIVE_TIMEOUT,
        companions: Companions | None = None,
    ) -> None:
        """``companions``: other processes this port answers for (their readiness joins
        ``/readyz``, their metrics ``/metrics``, each sample labelled with its process)."""
        self._registry = registry
        self._readiness = readiness
        self._companions = companions
        builtin = Router()
        builtin.add("GET", "/metrics", self._metrics)
        builtin.add("GET", "/healthz", self._healthz)
        builtin.add("GET", "/readyz", self._readyz)
        super().__init__(
            config.host,
            config.port,
            [builtin, *routers],
            key="http.port",
            max_connections=max_connections,
            idle_timeout=idle_timeout,
        )

    async def _metrics(self, _request: HttpRequest) -> HttpResponse:
        own = generate_latest(self._registry)
        if self._companions is not None:
            parts = [(OWN_PROCESS, own), *await self._companions.scrape()]
            own = merge_expositions(parts)
        return HttpResponse(200, own, content_type=CONTENT_TYPE_LATEST)

    async def _healthz(self, _request: HttpRequest) -> HttpResponse:
        # Liveness: the event loop answers. Readiness is /readyz.
        return HttpResponse(200, b"ok\n")

    async def _readyz(self, _request: HttpRequest) -> HttpResponse:
        states = self._readiness()
        if self._companions is not None:
            states |= await self._companions.readiness()
        waiting = sorted(name for name, ready in states.items() if not ready)
        if waiting:
            return HttpResponse(503, ("not ready: " + ", ".join(waiting) + "\n").encode())
        return HttpResponse(200, b"ready\n")


async def _serve(route: Route, aio: web.Request) -> web.StreamResponse:
    """Run ``route.handler`` with our limits and error answers."""
    request = HttpRequest(
        aio.method,
        aio.path,
        query={key: aio.query.getall(key) for key in aio.query},
        headers={name.lower(): value for name, value in aio.headers.items()},
        remote=aio.remote or "",
        read_body=lambda: _read_body(aio, route.max_body),
    )
    response = await _answer(route, request)
    out = web.Response(
        status=response.status,
        body=response.body,
        headers={"Content-Type": response.content_type, **response.headers},
    )
    if aio.can_read_body and (not request.body_read or response.status >= 400):
        # A body nobody read (refused before reading, or past the limit): close rather
        # than let aiohttp drain it from a client that may never stop sending.
        out.force_close()
    return out


def _closing(
    response: HttpResponse, aio: web.Request, headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """An error answer; a body that came with the request is never read: close after."""
    out = web.Response(
        status=response.status,
        body=response.body,
        headers={"Content-Type": response.content_type, **(headers or {})},
    )
    if aio.can_read_body:
        out.force_close()
    return out


async def _answer(route: Route, request: HttpRequest) -> HttpResponse:
    try:
        async with asyncio.timeout(HANDLER_TIMEOUT):
            return await route.handler(request)
    except BodyTooLarge:
        return _error(413, f"request body larger than {route.max_body} bytes")
    except _BodyTimeout:
        return _error(408, "request body timed out")
    except Exception:  # the runtime's last resort: one bad handler must not kill the port
        log.exception("http handler failed", extra={"method": request.method, "path": route.path})
        return _error(500, "internal error")


async def _read_body(aio: web.Request, limit: int) -> bytes:
    if not aio.can_read_body:
        return b""
    declared = aio.content_length
    if limit == 0 or (declared is not None and declared > limit):
        raise BodyTooLarge
    body = bytearray()
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            while chunk := await aio.content.read(limit + 1 - len(body)):
                body += chunk
                if len(body) > limit:  # chunked: no Content-Length to check first
                    raise BodyTooLarge
    except TimeoutError as exc:
        raise _BodyTimeout from exc
    return bytes(body)


def _error(status: int, text: str) -> HttpResponse:
    return HttpResponse(status, (text + "\n").encode())
