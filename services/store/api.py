"""The store's HTTP query API: a message's history, event search and reports, JSON or CSV.

Routes (``Authorization: Bearer <tenant API key or admin token>``)::

    GET /v1/messages/{id}     every event of one message (id or a unique prefix of 8+ hex)
    GET /v1/messages?recipient=&sender=&subject=&tag=&status=&since=&until=&cursor=&limit=
    GET /v1/reports?campaign=&since=&until=&series=1

A tenant's API key (the tenant table's, as the sending API checks it) sees only its tenant's
events: another tenant's message is a 404, as one that does not exist. The admin token (the
file ``store.admin_token_file``) sees every tenant, or one with ``?tenant=``; a tenant key
naming another tenant is a 403. Times are epoch seconds or ISO 8601 (``2026-12-06T00:00:00Z``);
the default range is the last day. ``Accept: text/csv`` or ``?format=csv`` answers CSV
(``shared.store.csvout``). Bad input is a 400 naming it, a database that is down a 503 with
``Retry-After``; every answer is ``{"error": ...}`` when it is not the result.

The API reads; it never writes. It lives on its own listener (``store.api_host``,
``store.api_port``) like the bouncer's admin API, apart from the process port.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from services.store.config import StoreConfig
from shared.errors import StoreError, StoreInvalid, StoreUnavailable
from shared.runtime.http import HttpHandler, HttpRequest, HttpResponse, Router
from shared.runtime.httpserver import HttpListener
from shared.secretfile import read_secret
from shared.store.csvout import events_csv, report_csv
from shared.store.db import Executor
from shared.store.queries import message_history
from shared.store.reports import tenant_report
from shared.store.search import DEFAULT_LIMIT, SearchQuery, search_events
from shared.wire.records import ApiKey, Tenant

BASE = "/v1"
JSON = "application/json"
CSV = "text/csv; charset=utf-8"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="postline"'}
RETRY_AFTER = "5"


#: A route's work once the caller is known: the request and the tenant it may see.
ScopedHandler = Callable[[HttpRequest, str | None], Awaitable[HttpResponse]]


class ApiKeys(Protocol):
    """Who an API key belongs to: ``shared.tenants.TenantTable`` is one."""

    def by_api_key(self, key: str) -> tuple[Tenant, ApiKey] | None:
        """The tenant and key for a whole API key; ``None`` for an unknown or revoked one."""
        ...


class _Refused(Exception):
    """A request answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def _json(status: int, value: object, headers: dict[str, str] | None = None) -> HttpResponse:
    body = msgspec.json.encode(value) + b"\n"
    return HttpResponse(status, body, content_type=JSON, headers=headers or {})


def _param(request: HttpRequest, name: str) -> str:
    values = request.query.get(name) or [""]
    return values[-1].strip()


def parse_time(value: str, name: str) -> float | None:
    """``since``/``until``: epoch seconds or ISO 8601 (UTC when it names no offset)."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise StoreInvalid(f"{name} is neither epoch seconds nor ISO 8601: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _limit(value: str) -> int:
    if not value:
        return DEFAULT_LIMIT
    try:
        return int(value)
    except ValueError as exc:
        raise StoreInvalid(f"limit is not a number: {value!r}") from exc


def wants_csv(request: HttpRequest) -> bool:
    """``?format=csv`` or ``Accept: text/csv`` (``?format=json`` wins over the header)."""
    fmt = _param(request, "format").lower()
    if fmt:
        if fmt not in ("csv", "json"):
            raise StoreInvalid(f"format is csv or json, not {fmt!r}")
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


class StoreApi:
    """The handlers; ``register`` adds them to a router.

    ``database`` returns the stage's connection, ``None`` while it has none (it connects,
    and reconnects after an outage, on its own schedule): those requests are 503s.
    """

    def __init__(
        self,
        database: Callable[[], Executor | None],
        keys: ApiKeys,
        admin_token: bytes | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._database = database
        self._keys = keys
        self._admin_token = admin_token
        self._clock = clock

    def register(self, router: Router) -> None:
        """Add the routes (GET only; none reads a body)."""
        router.add("GET", f"{BASE}/messages", self._guarded(self.search))
        router.add("GET", f"{BASE}/messages/", self._guarded(self.history))
        router.add("GET", f"{BASE}/reports", self._guarded(self.report))

    def _scope(self, request: HttpRequest) -> str | None:
        """The tenant the caller may see (``None``: every one, the admin)."""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        token = given.strip()
        if scheme.lower() != "bearer" or not token:
            raise _Refused(
                401, "Authorization: Bearer <API key or admin token> required", CHALLENGE
            )
        asked = _param(request, "tenant") or None
        if self._admin_token is not None and hmac.compare_digest(token.encode(), self._admin_token):
            return asked
        found = self._keys.by_api_key(token)
        if found is None:
            raise _Refused(401, "the API key is unknown or revoked", CHALLENGE)
        tenant = found[0].id
        if asked is not None and asked != tenant:
            raise _Refused(403, f"this key belongs to another tenant than {asked!r}")
        return tenant

    def _guarded(self, handler: ScopedHandler) -> HttpHandler:
        async def answer(request: HttpRequest) -> HttpResponse:
            try:
                tenant = self._scope(request)
                return await handler(request, tenant)
            except _Refused as exc:
                return _json(exc.status, {"error": str(exc)}, exc.headers)
            except StoreInvalid as exc:
                return _json(400, {"error": str(exc)})
            except StoreUnavailable:
                return _json(
                    503,
                    {"error": "the store is unavailable, try again"},
                    {"Retry-After": RETRY_AFTER},
                )
            except StoreError as exc:
                return _json(500, {"error": f"the store refused the query: {exc}"})

        return answer

    @property
    def _db(self) -> Executor:
        db = self._database()
        if db is None:
            raise StoreUnavailable("the store stage has no database connection yet")
        return db

    async def history(self, request: HttpRequest, tenant: str | None) -> HttpResponse:
        """``GET /v1/messages/{id}``."""
        given = request.path.removeprefix(f"{BASE}/messages/")
        as_csv = wants_csv(request)
        found = await message_history(self._db, given, tenant)
        if found is None:
            raise _Refused(404, f"no message {given}")
        if as_csv:
            return HttpResponse(200, events_csv(found.events).encode(), content_type=CSV)
        return _json(200, found)

    async def search(self, request: HttpRequest, tenant: str | None) -> HttpResponse:
        """``GET /v1/messages?...``: one page; ``next_cursor`` fetches the next."""
        query = SearchQuery(
            recipient=_param(request, "recipient"),
            sender=_param(request, "sender"),
            subject=_param(request, "subject"),
            tag=_param(request, "tag"),
            status=_param(request, "status"),
            since=parse_time(_param(request, "since"), "since"),
            until=parse_time(_param(request, "until"), "until"),
            cursor=_param(request, "cursor"),
            limit=_limit(_param(request, "limit")),
        )
        as_csv = wants_csv(request)
        page = await search_events(self._db, query, tenant, now=self._clock())
        if as_csv:
            headers = {"X-Next-Cursor": page.next_cursor} if page.next_cursor else {}
            return HttpResponse(200, events_csv(page.events).encode(), CSV, headers)
        return _json(200, page)

    async def report(self, request: HttpRequest, tenant: str | None) -> HttpResponse:
        """``GET /v1/reports?...``."""
        series = _param(request, "series").lower() in ("1", "true", "yes")
        as_csv = wants_csv(request)
        found = await tenant_report(
            self._db,
            tenant,
            campaign=_param(request, "campaign") or None,
            since=parse_time(_param(request, "since"), "since"),
            until=parse_time(_param(request, "until"), "until"),
            now=self._clock(),
            series=series,
        )
        if as_csv:
            return HttpResponse(200, report_csv(found).encode(), content_type=CSV)
        return _json(200, found)


def build_api(
    cfg: StoreConfig,
    source: str,
    database: Callable[[], Executor | None],
    keys: ApiKeys,
    *,
    clock: Callable[[], float] = time.time,
) -> HttpListener | None:
    """The stage's query API from ``[store]``: ``None`` when ``api_port`` is 0 (no API);
    the admin token read from ``admin_token_file`` now (a missing or short file is a
    :class:`~shared.errors.ConfigError` naming the key, in ``source``, the config file)."""
    if cfg.api_port == 0:
        return None
    token = None
    if cfg.admin_token_file is not None:
        token = read_secret(cfg.admin_token_file, "store.admin_token_file", source)
    return api_listener(StoreApi(database, keys, token, clock=clock), cfg.api_host, cfg.api_port)


def api_listener(api: StoreApi, host: str, port: int) -> HttpListener:
    """The listener serving ``api`` on ``host:port`` (``store.api_port`` in errors); the
    caller starts and closes it."""
    routes = Router()
    api.register(routes)
    return HttpListener(host, port, [routes], key="store.api_port")
