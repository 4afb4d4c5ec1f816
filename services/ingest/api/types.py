"""The HTTP API's request and response bodies, declared once: the decoder and the OpenAPI
schemas (``openapi.py``) both come from these Structs.

Requests refuse unknown fields (a misspelt ``reply_to`` must not silently send a message
without it: 422 naming the field); responses only ever gain fields. Binary content is base64
in JSON (msgspec's ``bytes``, RFC 4648 section 4). Checks beyond the schema (addresses,
header names, tags, send-at) are ``compose.py``'s; this module holds no logic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

_REQUEST: dict[str, bool] = {"forbid_unknown_fields": True, "kw_only": True}

Address = Annotated[
    str,
    msgspec.Meta(
        description='An address, alone or with a display name: "ann@example.com" or '
        '"Ann Example <ann@example.com>".',
        examples=["Shop <orders@shop.example>"],
        max_length=998,
    ),
]
AddressList = Annotated[list[Address], msgspec.Meta(max_length=1000)]
Tags = Annotated[
    dict[str, str],
    msgspec.Meta(
        description="Labels carried on the message's events (as X-Postline-<Name> headers "
        "are over SMTP): names of letters, digits, '-' and '_', values up to 256 characters.",
        examples=[{"campaign": "spring", "bulk": "yes"}],
    ),
]
SendAt = Annotated[
    datetime,
    msgspec.Meta(
        description="Deliver no earlier than this RFC 3339 time (with its offset), at most "
        "72 hours ahead; the message is accepted and kept until then.",
        examples=["2030-06-01T09:00:00+02:00"],
    ),
]


class Attachment(msgspec.Struct, **_REQUEST):
    """A file sent with the message."""

    filename: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    content: Annotated[bytes, msgspec.Meta(description="The file's bytes, base64.")]
    content_type: Annotated[
        str, msgspec.Meta(pattern=r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*$")
    ] = "application/octet-stream"
    #: ``inline`` with a ``content_id`` is shown where the HTML says ``cid:<content_id>``.
    disposition: Literal["attachment", "inline"] = "attachment"
    content_id: Annotated[
        str,
        msgspec.Meta(
            description="For an inline part: the id the HTML refers to as cid:<content_id>.",
            pattern=r"^[\x21-\x3b\x3d\x3f-\x7e]{0,250}$",
        ),
    ] = ""


class Tracking(msgspec.Struct, **_REQUEST):
    """Open and click tracking (not available on this version: ``true`` is refused)."""

    opens: bool = False
    clicks: bool = False


class MessageRequest(msgspec.Struct, **_REQUEST, rename={"from_": "from"}):
    """``POST /v1/messages``: a message built from its parts."""

    from_: Address
    to: AddressList = []
    cc: AddressList = []
    bcc: Annotated[
        list[Address],
        msgspec.Meta(max_length=1000, description="Recipients not named in the headers."),
    ] = []
    reply_to: AddressList = []
    subject: Annotated[str, msgspec.Meta(max_length=998)] = ""
    text: str | None = None
    html: str | None = None
    attachments: Annotated[list[Attachment], msgspec.Meta(max_length=100)] = []
    headers: Annotated[
        dict[str, str],
        msgspec.Meta(
            description="More header fields (In-Reply-To, List-Unsubscribe, X-...); not the "
            "ones the other fields set, nor Date, Message-ID or MIME fields."
        ),
    ] = {}
    tags: Tags = {}
    tracking: Tracking | None = None
    send_at: SendAt | None = None


class RawMessageRequest(msgspec.Struct, **_REQUEST, rename={"from_": "from"}):
    """``POST /v1/messages/raw``: a whole RFC 5322 message and its envelope, as over SMTP."""

    from_: Annotated[
        str, msgspec.Meta(description='The envelope sender (MAIL FROM); "" for none (<>).')
    ]
    to: Annotated[
        list[str],
        msgspec.Meta(min_length=1, max_length=1000, description="The envelope recipients."),
    ]
    message: Annotated[
        str | None,
        msgspec.Meta(description="The message as text; line ends become CRLF."),
    ] = None
    message_base64: Annotated[
        bytes | None,
        msgspec.Meta(description="Or the message's bytes, base64 (for 8-bit content)."),
    ] = None
    tags: Tags = {}
    send_at: SendAt | None = None


class BatchRequest(msgspec.Struct, **_REQUEST):
    """``POST /v1/messages/batch``: up to 500 messages in one request."""

    messages: Annotated[list[MessageRequest], msgspec.Meta(min_length=1, max_length=500)]


class RejectedRecipient(msgspec.Struct, kw_only=True):
    """A recipient refused while the rest of the message was accepted."""

    address: str
    reply: str  # the SMTP reply the same recipient gets over SMTP
    check: str  # the check that refused it (e.g. "suppression")


class Accepted(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A message the bus holds durably (``202``)."""

    id: str  # Postline's message id, on every event of the message
    message_id: str  # its Message-ID header field
    send_at: datetime | None = None
    rejected: list[RejectedRecipient] = []


class FieldError(msgspec.Struct, kw_only=True):
    """One problem with one part of the request."""

    field: str  # a JSON path: "$.to[2]"
    detail: str


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str  # a URI reference naming the kind of problem (GET it for a description)
    title: str  # the same for every problem of the type
    status: int  # the HTTP status code
    detail: str = ""  # this occurrence
    errors: list[FieldError] = []
    retry_after: int = 0  # seconds (as in the Retry-After header) for 429 and 503
    check: str = ""  # the policy check that refused the message, as in its rejected event
    reply: str = ""  # the SMTP reply the same message gets over SMTP
    rejected: list[RejectedRecipient] = []
    results: list[BatchResult] = []  # a batch of which no message was accepted: each one


class BatchResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One message of a batch: accepted (``status`` 202, with its ids) or not (a problem)."""

    index: int  # its place in the request's ``messages``
    status: int
    id: str = ""
    message_id: str = ""
    send_at: datetime | None = None
    rejected: list[RejectedRecipient] = []
    problem: Problem | None = None


class BatchResponse(msgspec.Struct, kw_only=True):
    """The answer to a batch: each message accepted or refused on its own."""

    accepted: int
    refused: int
    results: list[BatchResult]
