"""The process's HTTP port: ``/metrics``, ``/healthz``, ``/readyz`` and the routes stages add.

A deliberately small HTTP/1.1 server on ``asyncio.start_server``: one request per
connection (``Connection: close``), bodies read whole up to a limit, every read under a
timeout. It serves Prometheus scrapes, Kubernetes probes and a few small admin endpoints;
it is not a general web server (no chunked request bodies, no keep-alive, no TLS: put it
behind the cluster network or a proxy).

This module owns parsing, limits and error answers (400, 404, 405, 408, 413, 431, 500); the
routing table is :class:`shared.http.Router`, readiness comes from the stage contexts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from http import HTTPStatus
from urllib.parse import parse_qs, unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shared.config import HttpConfig
from shared.http import HttpHandler, HttpRequest, HttpResponse, Router

log = logging.getLogger("postline.http")

MAX_HEADER_BYTES = 16 * 1024  # request line plus headers
MAX_BODY_BYTES = 1024 * 1024
READ_TIMEOUT = 10.0  # seconds for the whole request to arrive
HANDLER_TIMEOUT = 30.0
WRITE_TIMEOUT = 10.0

#: Who is ready: stage name -> whether it serves now (``StageContext.ready``).
ReadinessProbe = Callable[[], dict[str, bool]]


class HttpError(Exception):
    """A request this server answers with an error status (internal to this module)."""

    def __init__(self, status: int, text: str = "") -> None:
        self.status = status
        super().__init__(text or HTTPStatus(status).phrase)


class HttpServer:
    """Serves one :class:`Router` plus the built-in endpoints on ``config.host:config.port``."""

    def __init__(
        self,
        config: HttpConfig,
        registry: CollectorRegistry,
        readiness: ReadinessProbe,
        routers: Sequence[Router] = (),
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self._config = config
        self._registry = registry
        self._readiness = readiness
        self._max_body = max_body
        self._routers = [self._builtin_router(), *routers]
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one when the config said 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the HTTP server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Bind and start accepting; raises ``OSError`` when the port cannot be bound."""
        self._server = await asyncio.start_server(
            self._serve, self._config.host, self._config.port, limit=MAX_HEADER_BYTES
        )
        log.info("http listening", extra={"host": self._config.host, "port": self.port})

    async def close(self) -> None:
        """Stop accepting and close the listener (requests in progress finish or time out)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _builtin_router(self) -> Router:
        router = Router()
        router.add("GET", "/metrics", self._metrics)
        router.add("GET", "/healthz", self._healthz)
        router.add("GET", "/readyz", self._readyz)
        return router

    async def _metrics(self, _request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, generate_latest(self._registry), content_type=CONTENT_TYPE_LATEST)

    async def _healthz(self, _request: HttpRequest) -> HttpResponse:
        # Liveness: the event loop answers. Readiness is /readyz.
        return HttpResponse(200, b"ok\n")

    async def _readyz(self, _request: HttpRequest) -> HttpResponse:
        states = self._readiness()
        waiting = sorted(name for name, ready in states.items() if not ready)
        if waiting:
            return HttpResponse(503, ("not ready: " + ", ".join(waiting) + "\n").encode())
        return HttpResponse(200, b"ready\n")

    def _resolve(self, method: str, path: str) -> HttpHandler:
        found_path = False
        for router in self._routers:
            handler = router.resolve(method, path)
            if handler is None:
                continue
            if handler is False:
                found_path = True
                continue
            assert not isinstance(handler, bool)
            return handler
        raise HttpError(405 if found_path else 404)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        remote = str(peer[0]) if isinstance(peer, tuple) else ""
        try:
            response = await self._answer(reader, remote)
            await asyncio.wait_for(_write(writer, response), WRITE_TIMEOUT)
        except (ConnectionError, TimeoutError):
            pass  # the client went away or stalled; nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, remote: str) -> HttpResponse:
        try:
            request = await asyncio.wait_for(self._read(reader, remote), READ_TIMEOUT)
        except TimeoutError:
            return _error(408, "request timed out")
        except HttpError as exc:
            return _error(exc.status, str(exc))
        try:
            handler = self._resolve(request.method, request.path)
        except HttpError as exc:
            return _error(exc.status, str(exc))
        try:
            return await asyncio.wait_for(handler(request), HANDLER_TIMEOUT)
        except Exception:  # the runtime's last resort: one bad handler must not kill the port
            log.exception(
                "http handler failed", extra={"method": request.method, "path": request.path}
            )
            return _error(500, "internal error")

    async def _read(self, reader: asyncio.StreamReader, remote: str) -> HttpRequest:
        method, target = await _read_request_line(reader)
        headers = await _read_headers(reader)
        body = await self._read_body(reader, headers)
        parts = urlsplit(target)
        return HttpRequest(
            method=method,
            path=unquote(parts.path) or "/",
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=headers,
            body=body,
            remote=remote,
        )

    async def _read_body(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if "transfer-encoding" in headers:
            raise HttpError(400, "chunked request bodies are not supported")
        raw = headers.get("content-length", "0").strip()
        if not raw.isdigit():
            raise HttpError(400, "bad Content-Length")
        length = int(raw)
        if length > self._max_body:
            raise HttpError(413)
        try:
            return await reader.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            raise HttpError(400, "body shorter than Content-Length") from exc


async def _readline(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        raise HttpError(431) from exc
    except asyncio.IncompleteReadError as exc:
        raise HttpError(400, "incomplete request") from exc


async def _read_request_line(reader: asyncio.StreamReader) -> tuple[str, str]:
    line = (await _readline(reader)).decode("latin-1").strip()
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
        raise HttpError(400, "bad request line")
    return parts[0].upper(), parts[1]


async def _read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    total = 0
    while True:
        line = await _readline(reader)
        total += len(line)
        if total > MAX_HEADER_BYTES:
            raise HttpError(431)
        text = line.decode("latin-1").rstrip("\r\n")
        if not text:
            return headers
        name, sep, value = text.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "bad header line")
        headers[name.lower()] = value.strip()


def _error(status: int, text: str) -> HttpResponse:
    return HttpResponse(status, (text + "\n").encode())


async def _write(writer: asyncio.StreamWriter, response: HttpResponse) -> None:
    try:
        phrase = HTTPStatus(response.status).phrase
    except ValueError:
        phrase = ""
    head = [
        f"HTTP/1.1 {response.status} {phrase}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
    ]
    head += [f"{k}: {v}" for k, v in response.headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
    await writer.drain()
