"""The quarantine admin API, on the admin listener beside suppressions, tenants, dead letters
and the queue.

Routes (each behind the admin bearer token; JSON in and out)::

    GET  /admin/quarantine                  the messages held, oldest first; ?tenant=T
    GET  /admin/quarantine/<id>             one (its id or a unique prefix): the verdict,
                                            envelope, client and header block
    POST /admin/quarantine/<id>/release     {"why"?}: to the signer, as if just accepted
    POST /admin/quarantine/<id>/delete      {"why"?}: removed unsent

An action answers 200 with ``{"results": [{"id", "done", "why"}], "done", "left"}`` (a
record that does not decode is ``done: false`` on release). Errors are ``{"error": ...}``:
400 for a malformed body or an ambiguous or too short prefix, 404 for an id not in the
quarantine (already released or deleted: nothing is published again). Owns decoding and
answers only; what is listed and done is ``shared.quarantine``'s, as for ``postline
quarantine``. The audit events name the caller as ``api:<address>``.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from services.bouncer.admin_http import answering, caller, decode_body, json_response
from shared import quarantine
from shared.bus.base import Bus
from shared.errors import QuarantineError, QuarantineInvalid, QuarantineNotFound
from shared.quarantine import Result
from shared.runtime.http import HttpHandler, HttpRequest, HttpResponse, Router

BASE = "/admin/quarantine"
MAX_BODY = 4 * 1024  # a reason


class ActionBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of a release or delete (may be empty)."""

    why: str = ""


#: The admin API's ``authenticated``: a handler behind the bearer token.
Wrap = Callable[[HttpHandler], HttpHandler]


class QuarantineApi:
    """Handlers of ``/admin/quarantine``."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    def register(self, router: Router, authenticated: Wrap) -> None:
        """Add the routes, each behind ``authenticated``."""
        routes: list[tuple[str, str, HttpHandler, int]] = [
            ("GET", BASE, self.listing, 0),
            ("GET", BASE + "/", self.show, 0),
            ("POST", BASE + "/", self.act, MAX_BODY),
        ]
        for method, path, handler, max_body in routes:
            answered = answering(handler, not_found=QuarantineNotFound, error=QuarantineError)
            router.add(method, path, authenticated(answered), max_body=max_body)

    async def listing(self, request: HttpRequest) -> HttpResponse:
        """The messages held (of one tenant with ``?tenant=``)."""
        tenant = request.query.get("tenant", [""])[0]
        entries = quarantine.select(await quarantine.load(self._bus), tenant=tenant)
        return json_response(200, [quarantine.entry_dict(entry) for entry in entries])

    async def show(self, request: HttpRequest) -> HttpResponse:
        """One message in full."""
        wanted = request.path[len(BASE) + 1 :]
        if not wanted or "/" in wanted:
            return json_response(404, {"error": f"not a message id: {wanted!r}"})
        entry = quarantine.find(await quarantine.load(self._bus), wanted)
        return json_response(200, quarantine.detail_dict(entry))

    async def act(self, request: HttpRequest) -> HttpResponse:
        """``<id>/release`` or ``<id>/delete``."""
        wanted, _, verb = request.path[len(BASE) + 1 :].rpartition("/")
        if verb not in ("release", "delete") or not wanted or "/" in wanted:
            return json_response(404, {"error": f"no such action: {request.path}"})
        body = await decode_body(request, ActionBody, QuarantineInvalid, b"{}")
        entries = quarantine.resolve(await quarantine.load(self._bus), [wanted])
        action = quarantine.release if verb == "release" else quarantine.delete
        return _results(await action(self._bus, entries, by=caller(request), why=body.why))


def _results(results: list[Result]) -> HttpResponse:
    done = sum(result.done for result in results)
    rows = [{"id": r.id, "done": r.done, "why": r.why} for r in results]
    return json_response(200, {"results": rows, "done": done, "left": len(results) - done})
