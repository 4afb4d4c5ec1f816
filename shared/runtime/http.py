"""HTTP request/response types and the router stages add their endpoints to.

The runtime serves one HTTP port per process (``shared.runtime.httpserver``, on aiohttp) with
``/metrics``, ``/healthz`` and ``/readyz``; a stage adds routes through ``StageContext.http``
(the bouncer's one-click unsubscribe endpoint) or serves a :class:`Router` on a listener of
its own (the bouncer's admin API, apart from the public port).

Deliberately thin, so stages never import aiohttp: a route names the largest body it reads
(``max_body``, 0 for none), and a handler reads the body only when it wants it
(:meth:`HttpRequest.body`), after routing and after its own checks (a bearer token), so a
request that is refused never makes the process buffer its body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field


class BodyTooLarge(Exception):
    """The body is larger than the route's ``max_body`` (the server answers 413)."""


class HttpRequest:
    """One request as a handler sees it; the body is read on demand, once."""

    def __init__(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        remote: str = "",
        read_body: Callable[[], Awaitable[bytes]] | None = None,
    ) -> None:
        self.method = method  # upper case
        self.path = path  # without the query string, percent-decoded
        self.query = query or {}
        self.headers = headers or {}  # lower-case names
        self.remote = remote
        self._read_body = read_body
        self._body: bytes | None = None

    @property
    def body_read(self) -> bool:
        """Whether a handler asked for the body (the server closes the connection if not)."""
        return self._body is not None

    async def body(self) -> bytes:
        """The body, up to the route's ``max_body``; raises :class:`BodyTooLarge` past it."""
        if self._body is None:
            self._body = b"" if self._read_body is None else await self._read_body()
        return self._body


@dataclass(frozen=True)
class HttpResponse:
    """A response to send."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]


@dataclass(frozen=True)
class Route:
    """One endpoint: ``path`` is exact, or a prefix when it ends in ``/``."""

    method: str
    path: str
    handler: HttpHandler
    max_body: int = 0  # largest request body the handler reads; 0: it reads none

    @property
    def is_prefix(self) -> bool:
        """Whether the route matches every path below ``path``."""
        return self.path.endswith("/") and self.path != "/"


class Router:
    """The routes one listener serves; the server turns them into aiohttp routes."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, path: str, handler: HttpHandler, *, max_body: int = 0) -> None:
        """Route ``method`` requests for ``path`` (or, ending in ``/``, below it).

        ``max_body`` is the largest body the handler may read (past it, 413); keep it as
        small as the endpoint needs, it bounds what one request can make the process hold.
        """
        if max_body < 0:
            raise ValueError("max_body must be >= 0")
        self._routes.append(Route(method.upper(), path, handler, max_body))

    def __iter__(self) -> Iterator[Route]:
        return iter(self._routes)

    def match(self, path: str) -> list[Route]:
        """The routes for ``path`` (any method): exact ones, else the longest prefix's."""
        exact = [route for route in self._routes if route.path == path]
        if exact:
            return exact
        below = [r for r in self._routes if r.is_prefix and path.startswith(r.path)]
        longest = max((len(r.path) for r in below), default=0)
        return [route for route in below if len(route.path) == longest]
