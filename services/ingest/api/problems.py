"""RFC 9457 problem details: the API's kinds of error, and the answers that carry them.

Every error answer is ``application/problem+json`` with a ``type`` naming its kind (a URI
reference, ``/v1/problems/<slug>``, which ``GET`` describes), the kind's ``title``, the
``status`` and a ``detail`` for this occurrence; 429 and 503 also carry ``Retry-After``.
A refusal by one of ingest's policy checks (:func:`from_decision`) names the check and the
SMTP reply the same message gets over SMTP, so both front doors explain themselves alike.

Owns the catalogue and the mapping from a check's decision to a status; raises nothing but
:class:`ApiProblem`, which the routes turn into the answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

from services.ingest.api.types import FieldError, Problem, RejectedRecipient
from services.ingest.policy.base import Decision
from shared.runtime.http import HttpResponse

CONTENT_TYPE = "application/problem+json"
BASE = "/v1/problems/"


@dataclass(frozen=True)
class Kind:
    """A kind of problem: its slug (in the type URI), status, title and what it means."""

    slug: str
    status: int
    title: str
    description: str

    @property
    def type(self) -> str:
        """The type URI reference."""
        return BASE + self.slug


MALFORMED_JSON = Kind(
    "malformed-json", 400, "Request body is not valid JSON", "The body could not be parsed."
)
INVALID_ADDRESS = Kind(
    "invalid-address",
    400,
    "An address is not valid",
    "An address has no domain or does not follow RFC 5321's grammar; ``errors`` names it.",
)
INVALID_IDEMPOTENCY_KEY = Kind(
    "invalid-idempotency-key",
    400,
    "Idempotency-Key is not valid",
    "The Idempotency-Key header must be 1 to 255 printable ASCII characters.",
)
UNAUTHORIZED = Kind(
    "unauthorized",
    401,
    "A valid API key is required",
    "Send Authorization: Bearer <API key>; the key is missing, unknown or revoked.",
)
FORBIDDEN = Kind(
    "forbidden",
    403,
    "Not allowed for this account",
    "A sender domain that is not one of the account's verified domains, or an account or "
    "sending domain that is paused or disabled.",
)
IN_PROGRESS = Kind(
    "idempotency-in-progress",
    409,
    "A request with this Idempotency-Key is still being processed",
    "Retry after Retry-After seconds: you will get that request's answer.",
)
TOO_LARGE = Kind(
    "too-large",
    413,
    "Request or message too large",
    "The request body is larger than the listener accepts, or the message than the "
    "account or ingest.limits.max_message_size allow, or an attachment than "
    "ingest.content.max_attachment_size allows.",
)
UNSUPPORTED_MEDIA = Kind(
    "unsupported-media-type",
    415,
    "Send application/json",
    "The request body must be JSON (Content-Type: application/json).",
)
INVALID_REQUEST = Kind(
    "invalid-request",
    422,
    "The request does not match the schema",
    "An unknown field, a missing one, or a value of the wrong type; ``errors`` names it "
    "(see /v1/openapi.json).",
)
INVALID_MESSAGE = Kind(
    "invalid-message",
    422,
    "The message cannot be sent as given",
    "A message without a body, a header that may not be set, a bad tag, a content check "
    "of ingest (the same as for SMTP: a refused attachment type, a signed message ingest "
    "would break), or too many recipients.",
)
INVALID_SEND_AT = Kind(
    "invalid-send-at",
    422,
    "send_at cannot be used",
    "send_at must be an RFC 3339 time with an offset, not in the past and at most 72 hours ahead.",
)
NO_RECIPIENT = Kind(
    "no-recipient-accepted",
    422,
    "No recipient was accepted",
    "Every recipient was refused (``rejected`` says why, e.g. the suppression list).",
)
KEY_REUSED = Kind(
    "idempotency-key-reused",
    422,
    "Idempotency-Key was used for another request",
    "A key names one request: a different body or endpoint needs a new key.",
)
RATE_LIMITED = Kind(
    "rate-limited",
    429,
    "Over a limit of this account",
    "A rate or quota of the account; retry after Retry-After seconds.",
)
UNAVAILABLE = Kind(
    "unavailable",
    503,
    "Temporarily unavailable",
    "Nothing was sent: the bus did not acknowledge in time, ingest is short of memory or "
    "stopping, a shared store did not answer, or the account defers while paused. Retry "
    "after Retry-After seconds (with the same Idempotency-Key).",
)

KINDS = {
    kind.slug: kind
    for kind in (
        MALFORMED_JSON,
        INVALID_ADDRESS,
        INVALID_IDEMPOTENCY_KEY,
        UNAUTHORIZED,
        FORBIDDEN,
        IN_PROGRESS,
        TOO_LARGE,
        UNSUPPORTED_MEDIA,
        INVALID_REQUEST,
        INVALID_MESSAGE,
        INVALID_SEND_AT,
        NO_RECIPIENT,
        KEY_REUSED,
        RATE_LIMITED,
        UNAVAILABLE,
    )
}

#: Checks that are a limit of the account or a client (429), not a verdict on the message.
_LIMITS = frozenset({"user_rate", "ip_rate"})
#: Checks that count the recipients of one message: over SMTP the client sends the rest
#: in another transaction (452); an API request is refused whole instead (422).
_RECIPIENT_COUNTS = frozenset({"recipient_limit", "tenant_recipients"})
#: Checks that judge the message's content with a 5.7.1 (a refused attachment): the
#: message cannot be sent as given (422), not a matter of the account's rights (403).
_CONTENT = frozenset({"attachment", "attachment_count"})


class ApiProblem(Exception):
    """A request (or one message of a batch) refused; ``problem`` says why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail or problem.title)
        self.problem = problem


def problem(
    kind: Kind,
    detail: str = "",
    *,
    errors: list[FieldError] | None = None,
    retry_after: float = 0.0,
    check: str = "",
    reply: str = "",
    rejected: list[RejectedRecipient] | None = None,
) -> Problem:
    """A problem of ``kind``."""
    return Problem(
        type=kind.type,
        title=kind.title,
        status=kind.status,
        detail=detail,
        errors=errors or [],
        retry_after=math.ceil(retry_after) if retry_after > 0 else 0,
        check=check,
        reply=reply,
        rejected=rejected or [],
    )


def fail(kind: Kind, detail: str = "", *, field: str = "") -> ApiProblem:
    """An :class:`ApiProblem` of ``kind`` (naming ``field``, a JSON path, when given)."""
    errors = [FieldError(field=field, detail=detail)] if field else None
    return ApiProblem(problem(kind, detail, errors=errors))


def kind_of(decision: Decision) -> Kind:
    """The kind of a policy check's refusal: a limit 429, our own or a deferred temporary
    failure 503, an authorization refusal (RFC 3463 X.7.x) 403, a size (X.3.4) 413, the
    rest 422."""
    reply = decision.reply
    if decision.check in _LIMITS or decision.check.startswith("tenant_per_"):
        return RATE_LIMITED
    if decision.check in _RECIPIENT_COUNTS or decision.check in _CONTENT:
        return INVALID_MESSAGE
    if reply.code < 500:
        return UNAVAILABLE
    if reply.enhanced.startswith("5.7."):
        return FORBIDDEN
    if reply.enhanced == "5.3.4":
        return TOO_LARGE
    return INVALID_MESSAGE


def from_decision(decision: Decision) -> Problem:
    """The problem for a policy check's refusal (naming the check and the SMTP reply)."""
    kind = kind_of(decision)
    retry = decision.retry_after
    if kind in (RATE_LIMITED, UNAVAILABLE) and retry <= 0:
        retry = 1.0  # a token bucket or a temporary failure: soon
    return problem(
        kind,
        decision.reply.text,
        retry_after=retry if kind in (RATE_LIMITED, UNAVAILABLE) else 0.0,
        check=decision.check,
        reply=str(decision.reply),
    )


def response(found: Problem, headers: dict[str, str] | None = None) -> HttpResponse:
    """The answer carrying ``found`` (with Retry-After when it says when to retry)."""
    extra = dict(headers or {})
    if found.retry_after:
        extra["Retry-After"] = str(found.retry_after)
    return HttpResponse(
        found.status, msgspec.json.encode(found), content_type=CONTENT_TYPE, headers=extra
    )


def describe(slug: str) -> dict[str, str | int] | None:
    """What ``GET /v1/problems/<slug>`` answers: the kind's type, status, title and meaning."""
    kind = KINDS.get(slug)
    if kind is None:
        return None
    return {
        "type": kind.type,
        "status": kind.status,
        "title": kind.title,
        "description": kind.description,
    }
