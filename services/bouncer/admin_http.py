"""What every admin API on the bouncer's admin listener answers alike: JSON bodies in and out,
``{"error": ...}`` answers for a module's own exceptions, and who made a change.

The admin APIs (suppressions, tenants, dead letters, the mail queue) each own their routes
and decide what a request does; this module keeps their HTTP conventions in one place.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import msgspec

from shared.runtime.http import HttpHandler, HttpRequest, HttpResponse

#: The content type of every admin answer.
JSON = "application/json"

T = TypeVar("T")


def json_response(status: int, value: Any) -> HttpResponse:
    """``value`` as a JSON answer with ``status`` (one line, newline-terminated for curl)."""
    return HttpResponse(status, (json.dumps(value) + "\n").encode(), content_type=JSON)


def caller(request: HttpRequest) -> str:
    """Who made a change, for the audit events: ``api:<address>`` (``api`` when unknown)."""
    return f"api:{request.remote}" if request.remote else "api"


async def decode_body(
    request: HttpRequest, kind: type[T], invalid: type[Exception], empty: bytes = b""
) -> T:
    """The request's JSON body as ``kind``; ``invalid`` (the API's 400 error) naming what
    is wrong, the field included, when it is not JSON or not a ``kind``. An empty body is
    read as ``empty`` (``b"{}"`` where every field has a default)."""
    try:
        return msgspec.json.decode(await request.body() or empty, type=kind)
    except msgspec.DecodeError as exc:  # ValidationError included: names the field
        raise invalid(str(exc)) from exc


def answering(
    handler: HttpHandler, *, not_found: type[Exception], error: type[Exception]
) -> HttpHandler:
    """``handler`` with ``not_found`` answered 404 and any other ``error`` 400, as
    ``{"error": message}``."""

    async def answered(request: HttpRequest) -> HttpResponse:
        try:
            return await handler(request)
        except not_found as exc:
            return json_response(404, {"error": str(exc)})
        except error as exc:
            return json_response(400, {"error": str(exc)})

    return answered
