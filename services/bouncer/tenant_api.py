"""The tenant admin API, on the admin listener beside the suppression routes (``admin.py``).

Routes (each behind the admin bearer token; JSON in and out)::

    GET    /admin/tenants                               every tenant
    POST   /admin/tenants                               {"id", "name"?} -> 201 (200: existed)
    GET    /admin/tenants/<id>                          one tenant
    PATCH  /admin/tenants/<id>                          {"name"?, "ip_pool"?, "limits"?: {...},
                                                         "settings"?: {..., "content"?: {...},
                                                         "tracking"?: {...}}}
    DELETE /admin/tenants/<id>                          a tombstone (404 when none)
    POST   /admin/tenants/<id>/pause|disable            {"why"}
    POST   /admin/tenants/<id>/resume
    POST   /admin/tenants/<id>/domains/<domain>/pause|disable   {"why"}: that domain only
    POST   /admin/tenants/<id>/domains/<domain>/resume
    PATCH  /admin/tenants/<id>/domains/<domain>         {"tracking"?: {...}, "ip_pool"?}
    GET    /admin/tenants/<id>/credentials              logins, never their secrets
    POST   /admin/tenants/<id>/credentials              {"name", "domains"?, "password"?}
                                                        -> 201 with the password, once
    POST   /admin/tenants/<id>/credentials/<name>/rotate  {"password"?} -> the password, once
    DELETE /admin/tenants/<id>/credentials/<name>
    GET    /admin/tenants/<id>/apikeys                  keys by their visible prefix
    POST   /admin/tenants/<id>/apikeys                  {"name"?} -> 201 with the key, once
    DELETE /admin/tenants/<id>/apikeys/<key id>         revoke

Tracking settings (``tracking``) are ``opens``, ``clicks`` and ``text_clicks`` (true, false,
or null: inherit) and ``host`` (a host name, "" inherits); ``require_tls`` (TLS required for
the tenant's mail, ``shared.tlsrequire``) is true, false or null (no tenant policy). Errors
are ``{"error": ...}``: 400 for a malformed body or value (naming the field), 404 for an
unknown tenant, domain, login or key, 409 for a conflict (another tenant's login or domain,
a change made meanwhile). Owns decoding and answers only; every operation is
``shared.tenant_admin``'s or ``shared.tenant_access``'s, as for ``postline tenant``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from services.bouncer.admin_http import caller, json_response
from shared import tenant_access, tenant_admin, tenant_fields
from shared.bus.base import Bus
from shared.errors import TenantConflict, TenantError, TenantInvalid, TenantNotFound
from shared.runtime.http import HttpHandler, HttpRequest, HttpResponse, Router
from shared.wire.records import TenantState

BASE = "/admin/tenants"
MAX_BODY = 16 * 1024  # a tenant's fields, limits and settings; a password

_STATES = {
    "pause": TenantState.PAUSED,
    "disable": TenantState.DISABLED,
    "resume": TenantState.ACTIVE,
}


class AddTenant(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /admin/tenants."""

    id: str
    name: str = ""


class SetTenant(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """PATCH /admin/tenants/<id>: only the fields given change."""

    name: str | None = None
    ip_pool: str | None = None
    limits: dict[str, float | int | str] = {}
    #: A setting's value, or for ``reputation``, ``content`` and ``tracking`` an object of
    #: their fields (a switch's null, tracking's or ``require_tls``: inherit).
    settings: dict[
        str,
        str | int | float | bool | dict[str, str | int | float | bool | list[str] | None] | None,
    ] = {}


class SetDomain(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """PATCH /admin/tenants/<id>/domains/<domain>: only the fields given change."""

    #: ``opens``, ``clicks``, ``text_clicks`` (true, false, null: inherit), ``host``.
    tracking: dict[str, str | bool | None] = {}
    ip_pool: str | None = None  # the domain's source pool ("" = the tenant's)


class StateChange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /admin/tenants/<id>/pause|resume|disable."""

    why: str = ""


class AddCredential(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /admin/tenants/<id>/credentials."""

    name: str
    domains: list[str] = []
    password: str | None = None  # default: generated, and answered once


class Rotate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /admin/tenants/<id>/credentials/<name>/rotate."""

    password: str | None = None


class AddApiKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /admin/tenants/<id>/apikeys."""

    name: str = ""


class TenantApi:
    """Handlers of the tenant routes; ``by`` in the audit trail is ``api:<client address>``."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    def register(self, router: Router, guard: Callable[[HttpHandler], HttpHandler]) -> None:
        """Add the routes, each wrapped in ``guard`` (the admin token check)."""
        router.add("GET", BASE, guard(self._list))
        router.add("POST", BASE, guard(self._answering(self._add)), max_body=MAX_BODY)
        for method in ("GET", "POST", "PATCH", "DELETE"):
            router.add(method, BASE + "/", guard(self._answering(self._one)), max_body=MAX_BODY)

    def _answering(self, handler: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> HttpHandler:
        """``handler`` with tenant errors and malformed bodies answered as JSON errors."""

        async def answered(request: HttpRequest) -> HttpResponse:
            try:
                return await handler(request)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                return json_response(400, {"error": f"body: {exc}"})
            except TenantError as exc:
                return json_response(_status(exc), {"error": str(exc)})

        return answered

    async def _list(self, _request: HttpRequest) -> HttpResponse:
        tenants = await tenant_admin.list_tenants(self._bus)
        return json_response(200, [tenant_admin.public_view(t) for t in tenants])

    async def _add(self, request: HttpRequest) -> HttpResponse:
        body = msgspec.json.decode(await request.body(), type=AddTenant)
        tenant, created = await tenant_admin.add(
            self._bus, body.id, name=body.name, by=caller(request)
        )
        return json_response(201 if created else 200, tenant_admin.public_view(tenant))

    async def _one(self, request: HttpRequest) -> HttpResponse:
        """Everything below ``/admin/tenants/``: routed by method and path segments."""
        parts = request.path[len(BASE) + 1 :].split("/")
        tenant_id, rest = parts[0], parts[1:]
        route = (request.method, *([rest[0]] if rest else []))
        if not tenant_id:
            raise TenantNotFound("no tenant id in the path")
        if len(rest) <= 1 and route in self._tenant_routes:
            return await self._tenant_routes[route](self, request, tenant_id)
        if rest and rest[0] == "credentials":
            return await self._credentials(request, tenant_id, rest[1:])
        if rest and rest[0] == "apikeys":
            return await self._apikeys(request, tenant_id, rest[1:])
        if request.method == "POST" and len(rest) == 3 and rest[0] == "domains":
            return await self._domain_state(request, tenant_id, rest[1], rest[2])
        if request.method == "PATCH" and len(rest) == 2 and rest[0] == "domains":
            return await self._domain_set(request, tenant_id, rest[1])
        return json_response(404, {"error": f"no route {request.method} {request.path}"})

    async def _show(self, _request: HttpRequest, tenant_id: str) -> HttpResponse:
        return json_response(
            200, tenant_admin.public_view(await tenant_admin.get(self._bus, tenant_id))
        )

    async def _set(self, request: HttpRequest, tenant_id: str) -> HttpResponse:
        body = msgspec.json.decode(await request.body(), type=SetTenant)
        tenant = await tenant_admin.set_fields(
            self._bus,
            tenant_id,
            name=body.name,
            ip_pool=body.ip_pool,
            limits=body.limits,
            settings=body.settings,
            by=caller(request),
        )
        return json_response(200, tenant_admin.public_view(tenant))

    async def _remove(self, request: HttpRequest, tenant_id: str) -> HttpResponse:
        if not await tenant_admin.remove(self._bus, tenant_id, by=caller(request)):
            raise TenantNotFound(f"no tenant {tenant_id!r}")
        return json_response(200, {"removed": tenant_id})

    async def _state(self, request: HttpRequest, tenant_id: str) -> HttpResponse:
        raw = await request.body()
        body = msgspec.json.decode(raw, type=StateChange) if raw.strip() else StateChange()
        state = _STATES[request.path.rsplit("/", 1)[1]]
        if state is not TenantState.ACTIVE and not body.why.strip():
            raise TenantInvalid("why: required (the refused client is told the reason)")
        tenant = await tenant_admin.set_state(
            self._bus, tenant_id, state, by=caller(request), why=body.why
        )
        return json_response(200, tenant_admin.public_view(tenant))

    async def _domain_state(
        self, request: HttpRequest, tenant_id: str, domain: str, verb: str
    ) -> HttpResponse:
        """One sending domain paused, disabled or resumed (the tenant's others unchanged)."""
        if verb not in _STATES:
            return json_response(404, {"error": f"no route {request.method} {request.path}"})
        raw = await request.body()
        body = msgspec.json.decode(raw, type=StateChange) if raw.strip() else StateChange()
        state = _STATES[verb]
        if state is not TenantState.ACTIVE and not body.why.strip():
            raise TenantInvalid("why: required (the refused client is told the reason)")
        tenant = await tenant_admin.set_domain_state(
            self._bus, tenant_id, domain, state, by=caller(request), why=body.why
        )
        return json_response(200, tenant_admin.public_view(tenant))

    async def _domain_set(self, request: HttpRequest, tenant_id: str, domain: str) -> HttpResponse:
        """One sending domain's tracking and source pool, each checked before either is
        published (two audit events when both change)."""
        body = msgspec.json.decode(await request.body(), type=SetDomain)
        if not body.tracking and body.ip_pool is None:
            raise TenantInvalid("body: nothing to change (tracking, ip_pool)")
        if body.ip_pool is not None:
            tenant_fields.ip_pool(body.ip_pool)
        name = domain.strip().lower().rstrip(".")
        tenant = await tenant_admin.get(self._bus, tenant_id)
        current = next((d for d in tenant.domains if d.name == name), None)
        if current is None:
            raise TenantNotFound(f"tenant {tenant_id!r} has no domain {name!r}")
        tenant_fields.tracking(current.tracking, body.tracking, f"domains.{name}.tracking")
        by = caller(request)
        if body.tracking:
            tenant = await tenant_admin.set_domain_tracking(
                self._bus, tenant_id, name, body.tracking, by=by
            )
        if body.ip_pool is not None:
            tenant = await tenant_admin.set_domain_pool(
                self._bus, tenant_id, name, body.ip_pool, by=by
            )
        return json_response(200, tenant_admin.public_view(tenant))

    _tenant_routes: dict[
        tuple[str, ...], Callable[[TenantApi, HttpRequest, str], Awaitable[HttpResponse]]
    ] = {
        ("GET",): _show,
        ("PATCH",): _set,
        ("DELETE",): _remove,
        ("POST", "pause"): _state,
        ("POST", "resume"): _state,
        ("POST", "disable"): _state,
    }

    async def _credentials(
        self, request: HttpRequest, tenant_id: str, rest: list[str]
    ) -> HttpResponse:
        by = caller(request)
        if request.method == "GET" and not rest:
            view = tenant_admin.public_view(await tenant_admin.get(self._bus, tenant_id))
            return json_response(200, view["credentials"])
        if request.method == "POST" and not rest:
            add = msgspec.json.decode(await request.body(), type=AddCredential)
            credential, password = await tenant_access.add_credential(
                self._bus,
                tenant_id,
                add.name,
                password=add.password,
                domains=tuple(add.domains),
                by=by,
            )
            answer = {"name": credential.name, "domains": list(credential.domains)}
            return json_response(
                201, answer | ({"password": password} if add.password is None else {})
            )
        if request.method == "POST" and len(rest) == 2 and rest[1] == "rotate":
            raw = await request.body()
            rotate = msgspec.json.decode(raw, type=Rotate) if raw.strip() else Rotate()
            _, password = await tenant_access.rotate_credential(
                self._bus, tenant_id, rest[0], password=rotate.password, by=by
            )
            answer = {"name": rest[0]}
            return json_response(
                200, answer | ({"password": password} if rotate.password is None else {})
            )
        if request.method == "DELETE" and len(rest) == 1:
            if not await tenant_access.remove_credential(self._bus, tenant_id, rest[0], by=by):
                raise TenantNotFound(f"no credential {rest[0]!r} in tenant {tenant_id!r}")
            return json_response(200, {"removed": rest[0]})
        return json_response(404, {"error": f"no route {request.method} {request.path}"})

    async def _apikeys(self, request: HttpRequest, tenant_id: str, rest: list[str]) -> HttpResponse:
        if request.method == "GET" and not rest:
            view = tenant_admin.public_view(await tenant_admin.get(self._bus, tenant_id))
            return json_response(200, view["api_keys"])
        if request.method == "POST" and not rest:
            raw = await request.body()
            add = msgspec.json.decode(raw, type=AddApiKey) if raw.strip() else AddApiKey()
            record, key = await tenant_access.add_api_key(
                self._bus, tenant_id, name=add.name, by=caller(request)
            )
            return json_response(201, {"id": record.id, "name": record.name, "key": key})
        if request.method == "DELETE" and len(rest) == 1:
            record = await tenant_access.revoke_api_key(
                self._bus, tenant_id, rest[0], by=caller(request)
            )
            return json_response(200, {"id": record.id, "revoked_at": record.revoked_at})
        return json_response(404, {"error": f"no route {request.method} {request.path}"})


def _status(exc: TenantError) -> int:
    if isinstance(exc, TenantNotFound):
        return 404
    if isinstance(exc, TenantConflict):
        return 409
    return 400
