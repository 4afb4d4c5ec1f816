"""HTTP request/response types and the router stages add their endpoints to.

The runtime serves one HTTP port per process (``shared.httpserver``) with ``/metrics``,
``/healthz`` and ``/readyz``; a stage may add routes (the bouncer's one-click unsubscribe
endpoint and admin API) through ``StageContext.http``. Deliberately tiny: HTTP/1.1,
no keep-alive guarantees, bodies read whole (with a size limit).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HttpRequest:
    """One parsed HTTP request."""

    method: str  # upper case
    path: str  # without the query string, percent-decoded
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    remote: str = ""


@dataclass(frozen=True)
class HttpResponse:
    """A response to send."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class Router:
    """Maps (method, path) to handlers; a path ending in ``/`` matches as a prefix."""

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], HttpHandler] = {}
        self._prefix: list[tuple[str, str, HttpHandler]] = []

    def add(self, method: str, path: str, handler: HttpHandler) -> None:
        """Route ``method`` requests for ``path`` (or, ending in ``/``, below it)."""
        if path.endswith("/") and path != "/":
            self._prefix.append((method.upper(), path, handler))
            self._prefix.sort(key=lambda item: len(item[1]), reverse=True)
        else:
            self._exact[(method.upper(), path)] = handler

    def resolve(self, method: str, path: str) -> HttpHandler | bool | None:
        """The handler; ``False`` when the path exists with other methods (405); ``None`` (404)."""
        handler = self._exact.get((method, path))
        if handler is not None:
            return handler
        for m, prefix, h in self._prefix:
            if path.startswith(prefix) and m == method:
                return h
        known = any(p == path for _, p in self._exact) or any(
            path.startswith(p) for _, p, _ in self._prefix
        )
        return False if known else None
