"""The OpenAPI 3.1 document of the sending API, served at ``GET /v1/openapi.json``.

The schemas are generated from the request and response Structs (``types.py``) with
``msgspec.json.schema_components``, so the document cannot drift from what the decoder
accepts (JSON Schema 2020-12, which OpenAPI 3.1 uses as is); the paths, statuses and
headers are written here. Owns the document only.
"""

from __future__ import annotations

from typing import Any

import msgspec

from services.ingest.api import problems
from services.ingest.api.types import (
    Accepted,
    BatchRequest,
    BatchResponse,
    MessageRequest,
    Problem,
    RawMessageRequest,
)

_REF = "#/components/schemas/{name}"
_TYPES = (MessageRequest, RawMessageRequest, BatchRequest, Accepted, BatchResponse, Problem)

_RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 1},
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Any string of 1 to 255 printable ASCII characters, unique per request: a "
    "retry with the same key (and the same body) gets the first answer instead of sending "
    "the message again. Kept per account for the configured time (24 hours by default).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


def _problem(description: str, retry: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {problems.CONTENT_TYPE: {"schema": {"$ref": _REF.format(name="Problem")}}},
    }
    if retry:
        answer["headers"] = {"Retry-After": _RETRY_AFTER}
    return answer


def _errors(accepted: str) -> dict[str, Any]:
    return {
        "202": {
            "description": accepted,
            "content": {"application/json": {"schema": {"$ref": _REF.format(name="Accepted")}}},
        },
        "400": _problem("Malformed JSON, an invalid address or Idempotency-Key."),
        "401": _problem("No API key, or an unknown or revoked one."),
        "403": _problem("A sender domain not verified for the account; the account paused."),
        "409": _problem("A request with this Idempotency-Key is still running.", retry=True),
        "413": _problem("The request or the message is too large."),
        "415": _problem("The body is not JSON."),
        "422": _problem(
            "Unknown or missing fields, a bad send_at, a message refused by a content check, "
            "every recipient refused, or an Idempotency-Key reused for another request."
        ),
        "429": _problem("Over a rate or quota of the account.", retry=True),
        "503": _problem("Nothing was sent: retry (with the same Idempotency-Key).", retry=True),
    }


def _post(summary: str, schema: str, answers: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": [_IDEMPOTENCY_KEY],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": _REF.format(name=schema)}}},
            },
            "responses": answers,
        }
    }


def document(max_batch: int, max_request_size: int) -> dict[str, Any]:
    """The whole document (limits as configured)."""
    _, components = msgspec.json.schema_components(_TYPES, ref_template=_REF)
    batch = _errors("Some messages were accepted: see each result.")
    batch["202"] = {
        "description": "At least one message was accepted; each result says which (202) "
        "and why not (a problem). Each message is accepted or refused whole.",
        "content": {"application/json": {"schema": {"$ref": _REF.format(name="BatchResponse")}}},
    }
    batch["422"] = _problem(
        "The request is not a valid batch, or no message was accepted (each one's problem "
        "in results)."
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Postline sending API",
            "version": "1",
            "description": "Send mail over HTTP with the same policy, limits and durability "
            "as SMTP: 202 means the message is durably queued. Requests are at most "
            f"{max_request_size} bytes; a batch holds up to {max_batch} messages. Errors "
            "are RFC 9457 problem details.",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key of the account (postline tenant apikey add).",
                }
            },
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/v1/messages": _post(
                "Send one message built from its parts",
                "MessageRequest",
                _errors("Accepted: the bus holds the message."),
            ),
            "/v1/messages/raw": _post(
                "Send one RFC 5322 message with its envelope",
                "RawMessageRequest",
                _errors("Accepted: the bus holds the message."),
            ),
            "/v1/messages/batch": _post(
                f"Send up to {max_batch} messages in one request", "BatchRequest", batch
            ),
            "/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "The OpenAPI document."}},
                }
            },
        },
    }


def encoded(max_batch: int, max_request_size: int) -> bytes:
    """The document as JSON bytes (built once, at start)."""
    return msgspec.json.encode(document(max_batch, max_request_size))
