"""The dead-letter admin API, on the admin listener beside suppressions and tenants.

Routes (each behind the admin bearer token; JSON in and out)::

    GET  /admin/dead                    dead letters still dead; ?topic=T&since=2h&all=1
    GET  /admin/dead/<offset>           one, with the decoded record or its bytes in hex
                                        (?full=1: the whole dump)
    POST /admin/dead/redrive            {"offsets": [N, ...]} | {"topic"?, "since"?} |
                                        {"all": true}: back on their topics after a fix
    POST /admin/dead/purge              {"offsets": [...]} | {"topic"?, "older_than"?} |
                                        {"all": true}, "why"?: marked handled

An action answers 200 with ``{"results": [{"offset", "topic", "done", "why"}], "done",
"left"}``: a record that still does not decode is ``done: false`` with the decoder's reason
and stays dead. Errors are ``{"error": ...}``: 400 for a malformed body, time or selection,
404 for an offset not on ``postline.dead``. Owns decoding and answers only; what is listed
and done is ``shared.deadletters``'s, as for ``postline dead``. The audit events name the
caller as ``api:<address>``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from services.bouncer.admin_http import answering, caller, decode_body, json_response
from shared import deadletters
from shared.bus.base import Bus
from shared.deadletters import Result, Selection
from shared.errors import DeadLetterError, DeadLetterInvalid, DeadLetterNotFound
from shared.runtime.http import HttpHandler, HttpRequest, HttpResponse, Router

BASE = "/admin/dead"
MAX_BODY = 64 * 1024  # a selection: up to a few thousand offsets


class ActionRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of a redrive or purge."""

    offsets: list[int] = []
    topic: str = ""
    since: str = ""  # redrive: dead-lettered since (a duration ago, or an ISO time)
    older_than: str = ""  # purge: dead-lettered at least this long ago
    all: bool = False
    why: str = ""  # purge: the reason kept with the mark


#: The admin API's ``authenticated``: a handler behind the bearer token.
Wrap = Callable[[HttpHandler], HttpHandler]


class DeadApi:
    """Handlers of ``/admin/dead``."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    def register(self, router: Router, authenticated: Wrap) -> None:
        """Add the routes, each behind ``authenticated``."""
        routes: list[tuple[str, str, HttpHandler, int]] = [
            ("GET", BASE, self.listing, 0),
            ("GET", BASE + "/", self.show, 0),
            ("POST", BASE + "/redrive", self.redrive, MAX_BODY),
            ("POST", BASE + "/purge", self.purge, MAX_BODY),
        ]
        for method, path, handler, max_body in routes:
            answered = answering(handler, not_found=DeadLetterNotFound, error=DeadLetterError)
            router.add(method, path, authenticated(answered), max_body=max_body)

    async def listing(self, request: HttpRequest) -> HttpResponse:
        """The dead letters a listing selects."""
        selection = deadletters.selection(
            at=time.time(),
            topic=_query(request, "topic"),
            since=_query(request, "since"),
            every=_query(request, "all") in ("1", "true", "yes"),
        )
        entries = deadletters.select(await deadletters.load(self._bus), selection)
        return json_response(200, [deadletters.entry_dict(entry) for entry in entries])

    async def show(self, request: HttpRequest) -> HttpResponse:
        """One dead letter in full."""
        text = request.path[len(BASE) + 1 :]
        if not text.isdigit():
            return json_response(404, {"error": f"not an offset: {text!r}"})
        only = Selection(offsets=frozenset({int(text)}))
        (entry,) = deadletters.select(await deadletters.load(self._bus), only)
        full = _query(request, "full") in ("1", "true", "yes")
        return json_response(200, deadletters.detail_dict(entry, full=full))

    async def redrive(self, request: HttpRequest) -> HttpResponse:
        """Back on their topics (undecodable ones stay dead with the reason)."""
        body = await decode_body(request, ActionRequest, DeadLetterInvalid, b"{}")
        entries = await self._selected(body, "redrive", since=body.since)
        return _results(await deadletters.redrive(self._bus, entries, by=caller(request)))

    async def purge(self, request: HttpRequest) -> HttpResponse:
        """Marked handled."""
        body = await decode_body(request, ActionRequest, DeadLetterInvalid, b"{}")
        entries = await self._selected(body, "purge", older_than=body.older_than)
        results = await deadletters.purge(self._bus, entries, by=caller(request), why=body.why)
        return _results(results)

    async def _selected(
        self, body: ActionRequest, action: str, *, since: str = "", older_than: str = ""
    ) -> list[deadletters.DeadEntry]:
        selection = deadletters.selection(
            at=time.time(),
            action=action,
            offsets=body.offsets,
            topic=body.topic,
            since=since,
            older_than=older_than,
            every=body.all,
        )
        return deadletters.select(await deadletters.load(self._bus), selection)


def _results(results: list[Result]) -> HttpResponse:
    done = sum(result.done for result in results)
    rows = [{"offset": r.offset, "topic": r.topic, "done": r.done, "why": r.why} for r in results]
    return json_response(200, {"results": rows, "done": done, "left": len(results) - done})


def _query(request: HttpRequest, name: str) -> str:
    return request.query.get(name, [""])[0]
