"""The suppression admin API, on its own listener (``bouncer.admin_*``), behind a bearer token.

Routes (every one needs ``Authorization: Bearer <token from admin_token_file>``)::

    GET    /admin/suppressions              every suppression, JSON
    GET    /admin/suppressions.csv          the same as CSV, for audits (formula-safe cells)
    GET    /admin/suppressions/<address>    one address (every scope), 404 when none
    POST   /admin/suppressions              {"address", "reason"?, "scope"?, "tenant"?,
                                             "detail"?} -> 201
    DELETE /admin/suppressions/<address>    ?scope=<domain>&tenant=<id> for a scoped entry -> 200

``tenant`` limits an entry to one tenant's mail, ``scope`` to bulk mail from a sender domain
(``shared.suppressions``). The token is checked before the body is read; a malformed
address, scope, tenant or detail is a 400
with ``{"error": ...}`` naming the problem. Owns authentication, request decoding and
answers; the list itself (and what a valid address is) is ``suppress.py``'s.
"""

from __future__ import annotations

import hmac

import msgspec

from services.bouncer.admin_http import json_response
from services.bouncer.suppress import (
    MAX_DETAIL,
    SuppressionAdmin,
    address_problem,
    domain_problem,
    export_csv,
    parse_reason,
    suppression_row,
    tenant_problem,
)
from shared.errors import BusError
from shared.runtime.http import HttpHandler, HttpRequest, HttpResponse, Router

BASE = "/admin/suppressions"
CSV = "text/csv; charset=utf-8"
MAX_BODY = 16 * 1024  # an AddRequest is an address, a reason, a scope and a short detail

UNAUTHORIZED = HttpResponse(
    401, b"bearer token required\n", headers={"WWW-Authenticate": 'Bearer realm="postline"'}
)
BUS_DOWN = HttpResponse(503, b"bus unavailable, try again\n", headers={"Retry-After": "5"})


class AddRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The POST body."""

    address: str
    reason: str = "manual"
    scope: str = ""
    detail: str = ""
    tenant: str = ""


class AdminApi:
    """Handlers of the admin API."""

    def __init__(self, token: bytes, admin: SuppressionAdmin) -> None:
        self._token = token
        self._admin = admin

    def register(self, router: Router) -> None:
        """Add the routes."""
        router.add("GET", BASE, self.authenticated(self.list))
        router.add("POST", BASE, self.authenticated(self.add), max_body=MAX_BODY)
        router.add("GET", BASE + ".csv", self.authenticated(self.export))
        router.add("GET", BASE + "/", self.authenticated(self.lookup))
        router.add("DELETE", BASE + "/", self.authenticated(self.remove))

    def authenticated(self, handler: HttpHandler) -> HttpHandler:
        """``handler`` behind the bearer token (checked before any body is read); a bus
        failure is a 503 to retry. The tenant routes (``tenant_api.py``) use it too."""

        async def checked(request: HttpRequest) -> HttpResponse:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), self._token
            ):
                return UNAUTHORIZED
            try:
                return await handler(request)
            except BusError:
                return BUS_DOWN

        return checked

    async def list(self, _request: HttpRequest) -> HttpResponse:
        """Every suppression."""
        return json_response(200, [suppression_row(s) for s in await self._admin.snapshot()])

    async def export(self, _request: HttpRequest) -> HttpResponse:
        """CSV export."""
        text = export_csv(await self._admin.snapshot())
        disposition = {"Content-Disposition": 'attachment; filename="suppressions.csv"'}
        return HttpResponse(200, text.encode(), content_type=CSV, headers=disposition)

    async def lookup(self, request: HttpRequest) -> HttpResponse:
        """One address."""
        address, refused = _address_from_path(request)
        if refused is not None:
            return refused
        found = await self._admin.lookup(address)
        if not found:
            return json_response(404, {"error": "not suppressed"})
        return json_response(200, [suppression_row(s) for s in found])

    async def add(self, request: HttpRequest) -> HttpResponse:
        """Suppress an address."""
        try:
            body = msgspec.json.decode(await request.body(), type=AddRequest)
            reason = parse_reason(body.reason)
        except (msgspec.DecodeError, ValueError) as exc:
            return json_response(400, {"error": str(exc)})
        problem = _add_problem(body)
        if problem is not None:
            return json_response(400, {"error": problem})
        record = await self._admin.add(
            body.address, reason, scope=body.scope, detail=body.detail, tenant=body.tenant
        )
        return json_response(201, suppression_row(record))

    async def remove(self, request: HttpRequest) -> HttpResponse:
        """Remove an address (a tombstone)."""
        address, refused = _address_from_path(request)
        if refused is not None:
            return refused
        scope = request.query.get("scope", [""])[0]
        if scope and (problem := domain_problem(scope)) is not None:
            return json_response(400, {"error": f"scope: {problem}"})
        tenant = request.query.get("tenant", [""])[0]
        if (problem := tenant_problem(tenant)) is not None:
            return json_response(400, {"error": problem})
        await self._admin.remove(address, scope=scope, tenant=tenant)
        return json_response(
            200, {"removed": address.lower(), "scope": scope.lower(), "tenant": tenant}
        )


def _address_from_path(request: HttpRequest) -> tuple[str, HttpResponse | None]:
    """The address after ``/admin/suppressions/``, or the answer refusing it."""
    address = request.path[len(BASE) + 1 :].strip()
    if not address:
        return "", json_response(404, {"error": "no address in the path"})
    problem = address_problem(address)
    if problem is not None:
        return "", json_response(400, {"error": problem})
    return address, None


def _add_problem(body: AddRequest) -> str | None:
    problem = address_problem(body.address.strip())
    if problem is not None:
        return problem
    if body.scope.strip() and (problem := domain_problem(body.scope.strip())) is not None:
        return f"scope: {problem}"
    if (problem := tenant_problem(body.tenant.strip())) is not None:
        return problem
    if len(body.detail) > MAX_DETAIL:
        return f"detail longer than {MAX_DETAIL} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in body.detail):
        return "detail contains a control character"
    return None
