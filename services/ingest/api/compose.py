"""A request as what ingest's checks take: the envelope, the message bytes, tags and send-at.

- ``POST /v1/messages``: the addresses are parsed (``addresses.py``, 400 naming the field),
  the header fields, tags, attachments and send-at checked (422 naming the field), and the
  message built (``mime.py``). The envelope sender is the From address; the recipients are
  To, Cc and Bcc, each once.
- ``POST /v1/messages/raw``: the message is taken as it is, except that its line ends
  become CRLF (a JSON string cannot be expected to hold them; bare CR or LF is an SMTP
  smuggling risk only inside an SMTP stream, RFC 5321 2.3.8).

Everything here is a pure function of the request and the time; nothing is checked against
a tenant (``submit.py`` runs the policy checks) and nothing is published.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from services.ingest import smuggling
from services.ingest.api import addresses, mime, problems
from services.ingest.api.types import Attachment, MessageRequest, RawMessageRequest
from shared import sendat

#: RFC 5322 2.2 field names: printable US-ASCII but ":".
_FIELD_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]{1,76}$")
#: A tag name, as ``X-Postline-<name>`` would give over SMTP (lower-cased).
_TAG_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
MAX_TAG_VALUE = 256
#: RFC 5322 2.1.1: a line is at most 998 characters; a field's value may be folded, but a
#: value longer than that is a payload, not a header field.
MAX_HEADER_VALUE = 998
#: Fields the request's own fields set, or ingest adds, or that belong to the MIME
#: structure or the trace: a ``headers`` entry may not set them.
RESERVED = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "content-id",
        "received",
        "return-path",
        "dkim-signature",
        sendat.HEADER.lower(),
    }
)


@dataclass(frozen=True)
class Composed:
    """One message as the checks take it."""

    mail_from: str  # "" is the null reverse-path
    recipients: list[str]
    data: bytes
    smtputf8: bool  # an address is not ASCII (RFC 6531)
    tags: dict[str, str] = field(default_factory=dict)
    send_at: float = 0.0  # 0: at once


def message(request: MessageRequest, now: float, max_tags: int) -> Composed:
    """A ``POST /v1/messages`` body as a :class:`Composed`; raises ``ApiProblem``."""
    sender = addresses.parse(request.from_, "$.from")
    to = addresses.parse_all(request.to, "$.to")
    cc = addresses.parse_all(request.cc, "$.cc")
    bcc = addresses.parse_all(request.bcc, "$.bcc")
    reply_to = addresses.parse_all(request.reply_to, "$.reply_to")
    recipients = addresses.envelope(to, cc, bcc)
    if not recipients:
        raise problems.fail(problems.INVALID_MESSAGE, "no recipient: give to, cc or bcc")
    if request.text is None and request.html is None:
        raise problems.fail(problems.INVALID_MESSAGE, "no body: give text, html or both")
    if request.tracking is not None and (request.tracking.opens or request.tracking.clicks):
        raise problems.fail(
            problems.INVALID_MESSAGE,
            "open and click tracking is not available on this installation",
            field="$.tracking",
        )
    _check_text(request.subject, "$.subject")
    _check_headers(request.headers)
    _check_attachments(request.attachments, has_html=request.html is not None)
    every = [sender, *to, *cc, *bcc, *reply_to]
    utf8 = not all(m.address.isascii() for m in every)
    data = mime.build(
        sender=sender,
        to=to,
        cc=cc,
        reply_to=reply_to,
        subject=request.subject,
        text=request.text,
        html=request.html,
        attachments=request.attachments,
        headers=request.headers,
        utf8=utf8,
    )
    return Composed(
        mail_from=sender.address,
        recipients=recipients,
        data=data,
        smtputf8=utf8,
        tags=tags(request.tags, max_tags),
        send_at=send_at(request.send_at, now),
    )


def raw(request: RawMessageRequest, now: float, max_tags: int) -> Composed:
    """A ``POST /v1/messages/raw`` body as a :class:`Composed`; raises ``ApiProblem``."""
    mail_from = addresses.parse(request.from_, "$.from").address if request.from_ else ""
    recipients = addresses.envelope(addresses.parse_all(request.to, "$.to"))
    if (request.message is None) == (request.message_base64 is None):
        raise problems.fail(
            problems.INVALID_REQUEST, "give one of message and message_base64", field="$"
        )
    if request.message is not None:
        try:
            data = request.message.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise problems.fail(
                problems.INVALID_REQUEST, f"message is not valid text: {exc}", field="$.message"
            ) from exc
    else:
        assert request.message_base64 is not None
        data = request.message_base64
    if not data.strip():
        raise problems.fail(problems.INVALID_MESSAGE, "the message is empty", field="$.message")
    if not data.endswith(b"\n"):
        data += b"\r\n"
    if smuggling.has_bare_cr_or_lf(data):
        data = smuggling.normalise(data)
    utf8 = not (mail_from.isascii() and all(r.isascii() for r in recipients))
    return Composed(
        mail_from=mail_from,
        recipients=recipients,
        data=data,
        smtputf8=utf8,
        tags=tags(request.tags, max_tags),
        send_at=send_at(request.send_at, now),
    )


def send_at(value: datetime | None, now: float) -> float:
    """A request's ``send_at`` as kept on the Submission (0: at once); 422 when unusable."""
    if value is None:
        return 0.0
    try:
        return sendat.check(sendat.aware_timestamp(value), now)
    except sendat.SendAtError as exc:
        raise problems.fail(problems.INVALID_SEND_AT, str(exc), field="$.send_at") from exc


def tags(given: dict[str, str], max_tags: int) -> dict[str, str]:
    """The request's tags, names lower-cased; 422 for a bad name or value, or too many."""
    if len(given) > max_tags:
        raise problems.fail(problems.INVALID_MESSAGE, f"more than {max_tags} tags", field="$.tags")
    out: dict[str, str] = {}
    for name, value in given.items():
        where = f"$.tags.{name}"
        if not _TAG_NAME.match(name.lower()):
            raise problems.fail(
                problems.INVALID_MESSAGE,
                "a tag name is 1 to 64 letters, digits, '-' or '_'",
                field=where,
            )
        if len(value) > MAX_TAG_VALUE or _CONTROL.search(value):
            raise problems.fail(
                problems.INVALID_MESSAGE,
                f"a tag value is at most {MAX_TAG_VALUE} characters, without control characters",
                field=where,
            )
        out[name.lower()] = value
    return out


def _check_text(value: str, where: str) -> None:
    if _CONTROL.search(value):
        raise problems.fail(
            problems.INVALID_MESSAGE, "control characters (CR, LF, ...) not allowed", field=where
        )


def _check_headers(headers: dict[str, str]) -> None:
    for name, value in headers.items():
        where = f"$.headers.{name}"
        if not _FIELD_NAME.match(name):
            raise problems.fail(
                problems.INVALID_MESSAGE,
                "a header name is printable ASCII without ':' (RFC 5322 2.2)",
                field=where,
            )
        if name.lower() in RESERVED:
            raise problems.fail(
                problems.INVALID_MESSAGE,
                f"{name} is set by the request's own fields or by Postline",
                field=where,
            )
        if len(value) > MAX_HEADER_VALUE:
            raise problems.fail(
                problems.INVALID_MESSAGE, f"longer than {MAX_HEADER_VALUE}", field=where
            )
        _check_text(value, where)


def _check_attachments(attachments: list[Attachment], *, has_html: bool) -> None:
    for i, attachment in enumerate(attachments):
        where = f"$.attachments[{i}]"
        maintype = attachment.content_type.partition("/")[0].lower()
        if maintype in ("multipart", "message"):
            # RFC 2046 5.1.1 and 5.2.1: these may not be base64; send them as octets.
            raise problems.fail(
                problems.INVALID_MESSAGE,
                f"{attachment.content_type} cannot be attached as bytes: use "
                "application/octet-stream (or /v1/messages/raw for a whole message)",
                field=f"{where}.content_type",
            )
        _check_text(attachment.filename, f"{where}.filename")
        if attachment.disposition == "inline" and attachment.content_id and not has_html:
            raise problems.fail(
                problems.INVALID_MESSAGE,
                "an inline part with a content_id needs an html body to show it",
                field=f"{where}.content_id",
            )
