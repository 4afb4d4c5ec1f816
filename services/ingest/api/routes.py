"""The sending API's endpoints, on ingest's API listener (``[ingest.api] listen``).

    POST /v1/messages          one message from its parts (MessageRequest)  -> 202 Accepted
    POST /v1/messages/raw      one RFC 5322 message and its envelope        -> 202 Accepted
    POST /v1/messages/batch    up to ``max_batch`` messages                 -> 202 BatchResponse
    GET  /v1/openapi.json      the OpenAPI 3.1 document (no key needed)
    GET  /v1/problems/<slug>   what a problem type means (no key needed)

A request goes: the key (``Authorization: Bearer``, before anything is read: 401), the
content type (415), the ``Idempotency-Key`` header's form (400), room in ingest's memory
budget for the body (the SMTP sessions' ``limits.max_buffered_bytes``: 503 when full), the
body (413 past ``max_request_size``), the key's claim (``idempotency.py``: a replay, 409 or
422), decoding (400 malformed JSON, 422 naming an unknown or wrong field), then the message
(``compose.py``) and ingest's policy and hand-off (``submit.py``). 202 only once the bus
holds the message; a bus failure is 503 with nothing sent. Every answer is counted per
endpoint and status. Each request holds an activity token, so a drain waits for it, and a
stopping ingest answers 503.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec

from services.ingest.api import compose, problems
from services.ingest.api.idempotency import (
    IdempotencyUnavailable,
    Store,
    Stored,
    fingerprint,
)
from services.ingest.api.submit import Prepared, Submitter
from services.ingest.api.types import (
    BatchRequest,
    BatchResponse,
    BatchResult,
    MessageRequest,
    Problem,
    RawMessageRequest,
)
from services.ingest.config import ApiConfig
from services.ingest.core import IngestCore
from services.ingest.policy.base import SessionInfo
from shared.errors import BusError, BusFull
from shared.runtime.http import BodyTooLarge, HttpRequest, HttpResponse, Router

MESSAGES = "/v1/messages"
RAW = "/v1/messages/raw"
BATCH = "/v1/messages/batch"
OPENAPI = "/v1/openapi.json"
JSON = "application/json"
#: How long a client waits after a 503 of ours: a bus failover, a full memory budget.
BUS_RETRY = 5.0
_IDEMPOTENCY_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
_JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json\s*(?:;.*)?$", re.IGNORECASE)

T = TypeVar("T")
#: What an endpoint does once the request is authenticated and its body read.
Work = Callable[[SessionInfo, bytes], Awaitable[HttpResponse]]


class ApiRoutes:
    """The handlers of the sending API (see the module docstring)."""

    def __init__(
        self,
        core: IngestCore,
        config: ApiConfig,
        submitter: Submitter,
        store: Store,
        openapi: bytes,
    ) -> None:
        self.core = core
        self.config = config
        self.submitter = submitter
        self.store = store
        self._openapi = openapi

    def register(self, router: Router) -> None:
        """Add the routes."""
        limit = int(self.config.max_request_size)
        router.add("POST", MESSAGES, self.message, max_body=limit)
        router.add("POST", RAW, self.raw, max_body=limit)
        router.add("POST", BATCH, self.batch, max_body=limit)
        router.add("GET", OPENAPI, self.openapi)
        router.add("GET", problems.BASE, self.problem_type)

    async def message(self, request: HttpRequest) -> HttpResponse:
        """``POST /v1/messages``."""
        return await self._serve(request, "message", self._message)

    async def raw(self, request: HttpRequest) -> HttpResponse:
        """``POST /v1/messages/raw``."""
        return await self._serve(request, "raw", self._raw)

    async def batch(self, request: HttpRequest) -> HttpResponse:
        """``POST /v1/messages/batch``."""
        return await self._serve(request, "batch", self._batch)

    async def openapi(self, request: HttpRequest) -> HttpResponse:
        """``GET /v1/openapi.json``."""
        self._count("openapi", 200, time.monotonic())
        return HttpResponse(200, self._openapi, content_type=JSON)

    async def problem_type(self, request: HttpRequest) -> HttpResponse:
        """``GET /v1/problems/<slug>``: what a problem type means."""
        found = problems.describe(request.path[len(problems.BASE) :])
        status = 200 if found is not None else 404
        self._count("problem", status, time.monotonic())
        body = msgspec.json.encode(found or {"error": "no such problem type"})
        return HttpResponse(status, body, content_type=JSON)

    # -- one request -------------------------------------------------------------------

    async def _serve(self, request: HttpRequest, endpoint: str, work: Work) -> HttpResponse:
        started = time.monotonic()
        try:
            response = await self._answer(request, endpoint, work)
        except problems.ApiProblem as exc:
            response = problems.response(exc.problem, _challenge(exc.problem))
        self._count(endpoint, response.status, started)
        return response

    async def _answer(self, request: HttpRequest, endpoint: str, work: Work) -> HttpResponse:
        core = self.core
        if core.policy.stopping:
            raise problems.ApiProblem(
                problems.problem(problems.UNAVAILABLE, "ingest is stopping", retry_after=1)
            )
        info = self._authenticate(request)
        content_type = request.headers.get("content-type", "")
        if content_type and not _JSON_TYPE.match(content_type):
            raise problems.fail(problems.UNSUPPORTED_MEDIA, f"Content-Type is {content_type}")
        key = request.headers.get("idempotency-key")
        if key is not None and not _IDEMPOTENCY_KEY.match(key):
            raise problems.fail(
                problems.INVALID_IDEMPOTENCY_KEY, "1 to 255 printable ASCII characters"
            )
        # The body counts against the same memory budget as SMTP sessions' messages.
        declared = _content_length(request)
        held = min(declared, int(self.config.max_request_size)) if declared is not None else 0
        held = held or int(self.config.max_request_size)
        if not core.budget.take(held):
            raise problems.ApiProblem(
                problems.problem(
                    problems.UNAVAILABLE, "ingest is short of memory", retry_after=BUS_RETRY
                )
            )
        try:
            async with core.activity():
                try:
                    body = await request.body()
                except BodyTooLarge as exc:
                    raise problems.fail(
                        problems.TOO_LARGE,
                        f"the request is larger than {int(self.config.max_request_size)} bytes",
                    ) from exc
                if key is None:
                    return await self._run(work, info, body)
                return await self._idempotent(endpoint, key, info, body, work)
        finally:
            core.budget.give(held)

    def _authenticate(self, request: HttpRequest) -> SessionInfo:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise problems.fail(problems.UNAUTHORIZED, "no Authorization: Bearer <API key>")
        found = self.core.policy.tenants.by_api_key(given.strip())
        if found is None:
            raise problems.fail(problems.UNAUTHORIZED, "the API key is unknown or revoked")
        tenant, api_key = found
        return self.submitter.session(request.remote, tenant.id, api_key)

    async def _idempotent(
        self, endpoint: str, key: str, info: SessionInfo, body: bytes, work: Work
    ) -> HttpResponse:
        tenant = info.user.tenant if info.user is not None else ""
        sensor = self.core.metrics.api_idempotency
        try:
            claim = await self.store.claim(tenant, key, fingerprint(endpoint, body))
        except IdempotencyUnavailable as exc:  # counted as store_failed by the store
            raise problems.ApiProblem(
                problems.problem(problems.UNAVAILABLE, str(exc), retry_after=1)
            ) from exc
        if claim.state == "done":
            assert claim.answer is not None
            sensor.labels("replayed").inc()
            kept = claim.answer
            return HttpResponse(
                kept.status,
                kept.body,
                content_type=kept.content_type,
                headers={"Idempotent-Replayed": "true"},
            )
        if claim.state == "busy":
            sensor.labels("in_progress").inc()
            raise problems.ApiProblem(
                problems.problem(
                    problems.IN_PROGRESS, "the first request is still running", retry_after=1
                )
            )
        if claim.state == "mismatch":
            sensor.labels("mismatch").inc()
            raise problems.fail(problems.KEY_REUSED, "this key was used with another body")
        sensor.labels("new").inc()
        response = await self._run(work, info, body)
        if response.status == 202:
            answer = Stored(response.status, response.body, response.content_type)
            await self.store.complete(tenant, key, claim.token, answer)
        else:
            await self.store.release(tenant, key, claim.token)
        return response

    async def _run(self, work: Work, info: SessionInfo, body: bytes) -> HttpResponse:
        try:
            return await work(info, body)
        except problems.ApiProblem as exc:
            return problems.response(exc.problem)

    # -- the endpoints' work -----------------------------------------------------------

    async def _message(self, info: SessionInfo, body: bytes) -> HttpResponse:
        request = _decode(body, MessageRequest)
        composed = compose.message(request, self.core.policy.clock(), self._max_tags)
        prepared = await self.submitter.prepare(info, composed)
        await self._hand_off([prepared])
        return HttpResponse(202, msgspec.json.encode(prepared.accepted()), content_type=JSON)

    async def _raw(self, info: SessionInfo, body: bytes) -> HttpResponse:
        request = _decode(body, RawMessageRequest)
        composed = compose.raw(request, self.core.policy.clock(), self._max_tags)
        prepared = await self.submitter.prepare(info, composed)
        await self._hand_off([prepared])
        return HttpResponse(202, msgspec.json.encode(prepared.accepted()), content_type=JSON)

    async def _batch(self, info: SessionInfo, body: bytes) -> HttpResponse:
        request = _decode(body, BatchRequest)
        if len(request.messages) > self.config.max_batch:
            raise problems.fail(
                problems.INVALID_REQUEST,
                f"at most {self.config.max_batch} messages per batch",
                field="$.messages",
            )
        now = self.core.policy.clock()
        results: list[BatchResult] = []
        ready: list[tuple[int, Prepared]] = []
        for index, item in enumerate(request.messages):
            try:
                composed = compose.message(item, now, self._max_tags)
                ready.append((index, await self.submitter.prepare(info, composed)))
            except problems.ApiProblem as exc:
                results.append(
                    BatchResult(index=index, status=exc.problem.status, problem=exc.problem)
                )
        if not ready:
            raise _all_refused(results)
        await self._hand_off([prepared for _, prepared in ready])
        for index, prepared in ready:
            accepted = prepared.accepted()
            results.append(
                BatchResult(
                    index=index,
                    status=202,
                    id=accepted.id,
                    message_id=accepted.message_id,
                    send_at=accepted.send_at,
                    rejected=accepted.rejected,
                )
            )
        results.sort(key=lambda result: result.index)
        answer = BatchResponse(
            accepted=len(ready), refused=len(results) - len(ready), results=results
        )
        return HttpResponse(202, msgspec.json.encode(answer), content_type=JSON)

    async def _hand_off(self, prepared: list[Prepared]) -> None:
        try:
            await self.submitter.hand_off(prepared)
        except BusError as exc:
            self.core.log.warning(
                "API hand-off failed, answered 503",
                extra={"messages": len(prepared), "error": str(exc)},
            )
            detail = "the bus is full" if isinstance(exc, BusFull) else "the bus did not answer"
            raise problems.ApiProblem(
                problems.problem(
                    problems.UNAVAILABLE, f"{detail}; nothing was sent", retry_after=BUS_RETRY
                )
            ) from exc

    @property
    def _max_tags(self) -> int:
        return self.core.config.limits.max_tags

    def _count(self, endpoint: str, status: int, started: float) -> None:
        metrics = self.core.metrics
        metrics.api_requests.labels(endpoint, str(status)).inc()
        metrics.api_seconds.labels(endpoint).observe(time.monotonic() - started)


def _all_refused(results: list[BatchResult]) -> problems.ApiProblem:
    """The 422 of a batch of which no message was accepted, each one's problem inside."""
    found = problems.problem(problems.INVALID_MESSAGE, "no message of the batch was accepted")
    return problems.ApiProblem(msgspec.structs.replace(found, results=results))


def _decode(body: bytes, typ: type[T]) -> T:
    """The body as ``typ``: 400 when it is not JSON, 422 naming the field that does not
    fit the schema (an unknown field, a missing one, a wrong type, bad base64)."""
    try:
        return msgspec.json.decode(body, type=typ)
    except msgspec.ValidationError as exc:
        text, _, path = str(exc).rpartition(" - at `")
        where = path.rstrip("`") if text else "$"
        detail = text or str(exc)
        raise problems.fail(
            problems.INVALID_REQUEST, f"{detail} (at {where})", field=where
        ) from exc
    except msgspec.DecodeError as exc:
        raise problems.fail(problems.MALFORMED_JSON, str(exc)) from exc


def _content_length(request: HttpRequest) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def _challenge(found: Problem) -> dict[str, str]:
    """RFC 6750 3: a 401 names the scheme (and, for a key we refused, the error)."""
    if found.status != 401:
        return {}
    error = ', error="invalid_token"' if "unknown" in found.detail else ""
    return {"WWW-Authenticate": f'Bearer realm="postline"{error}'}
