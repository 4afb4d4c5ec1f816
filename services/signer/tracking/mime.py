"""The text parts tracking rewrites, found on the raw bytes, and one part's text in and out.

:func:`text_parts` finds the text parts tracking may rewrite (text/html, and text/plain when
asked; inline, not attachments) as byte spans of the message, so every other byte (headers,
boundaries, preambles, other parts) is copied unchanged. It descends into multipart/*
(RFC 2046 5.1: a delimiter is ``--boundary`` at the start of a line, the line break before
it belongs to it, the close delimiter ends the part) but never into an attached message
(message/rfc822 is the sender's to keep as it was). Signed or encrypted content
(multipart/signed, multipart/encrypted, application/pkcs7-mime) refuses the whole message:
any change would break the signature or is impossible.

:func:`decode` and :func:`encode` turn a part's body into text and back with its own
Content-Transfer-Encoding and charset. Bytes the charset cannot decode survive as
surrogates (``surrogateescape``); a charset whose round trip is not exact (stateful
encodings such as ISO-2022-JP may differ) refuses the message. A 7bit or 8bit part whose
new text has a line over RFC 5322's 998 octets (tracked URLs are long; only ASCII is ever
added, so a 7bit part stays 7bit otherwise) becomes quoted-printable, its header saying so.
"""

from __future__ import annotations

import binascii
import codecs
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from services.signer.mimebytes import (
    CTE_FIELD,
    MAX_DEPTH,
    SIGNED_TYPES,
    MimeStructureError,
    base64_lines,
    body_parts,
    header_span,
    quoted_printable,
)
from shared.errors import Untrackable

MAX_LINE = 998  # RFC 5322 2.1.1
_ENCODINGS = frozenset({"7bit", "8bit", "binary", "quoted-printable", "base64"})


@dataclass(frozen=True)
class TextPart:
    """A rewritable text part: byte spans in the message and how its body is encoded."""

    header_start: int  # its header block (for the top level: the message's header)
    header_end: int  # just past the last header line's line break
    body_start: int  # just past the empty line
    body_end: int
    subtype: str  # "html" or "plain"
    charset: str  # a Python codec name
    encoding: str  # one of _ENCODINGS
    newline: bytes  # b"\r\n" or b"\n", as the part has them


def _codec(fields: Message) -> str:
    charset = fields.get_content_charset() or "us-ascii"
    try:
        return codecs.lookup(charset).name
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        raise Untrackable("unknown_charset", f"unknown charset {charset!r}") from None


def _walk(
    data: bytes, start: int, end: int, *, default: str, depth: int, plain: bool
) -> list[TextPart]:
    if depth > MAX_DEPTH:
        raise Untrackable("unparseable", f"MIME nested deeper than {MAX_DEPTH}")
    header_end, body_start = header_span(data, start, end)
    fields = BytesHeaderParser(policy=compat32).parsebytes(data[start:header_end])
    fields.set_default_type(default)
    ctype = fields.get_content_type()
    if ctype in SIGNED_TYPES:
        raise Untrackable("signed_content", f"the message has {ctype} content")
    if ctype.startswith("multipart/"):
        boundary = fields.get_boundary()
        if not boundary or not boundary.isascii():  # RFC 2046 5.1.1: bchars are ASCII
            raise Untrackable("unparseable", f"{ctype} without a usable boundary")
        child = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
        found: list[TextPart] = []
        try:
            spans = body_parts(data, body_start, end, boundary)
        except MimeStructureError as exc:
            raise Untrackable("unparseable", str(exc)) from None
        for part_start, part_end in spans:
            found += _walk(data, part_start, part_end, default=child, depth=depth + 1, plain=plain)
        return found
    wanted = ctype == "text/html" or (plain and ctype == "text/plain")
    if not wanted or fields.get_content_disposition() == "attachment":
        return []
    encoding = str(fields.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    if encoding not in _ENCODINGS:
        raise Untrackable("unparseable", f"unknown Content-Transfer-Encoding {encoding!r}")
    body = data[body_start:end]
    return [
        TextPart(
            header_start=start,
            header_end=header_end,
            body_start=body_start,
            body_end=end,
            subtype=ctype.partition("/")[2],
            charset=_codec(fields),
            encoding=encoding,
            newline=b"\r\n" if b"\r\n" in body or b"\n" not in body else b"\n",
        )
    ]


def text_parts(message: bytes, *, plain: bool) -> list[TextPart]:
    """The message's inline text/html parts (and text/plain ones when ``plain``), in order;
    raises :class:`Untrackable` for signed or encrypted content and MIME it cannot parse."""
    return _walk(message, 0, len(message), default="text/plain", depth=0, plain=plain)


def decode(message: bytes, part: TextPart) -> str:
    """The part's body as text (its transfer encoding and charset undone)."""
    raw = message[part.body_start : part.body_end]
    try:
        if part.encoding == "quoted-printable":
            raw = binascii.a2b_qp(raw)
        elif part.encoding == "base64":
            raw = binascii.a2b_base64(raw)
        text = raw.decode(part.charset, "surrogateescape")
        exact = text.encode(part.charset, "surrogateescape") == raw
    except (binascii.Error, UnicodeError, LookupError) as exc:
        # LookupError: a codec that is not a text encoding ("base64" named as a charset).
        raise Untrackable("undecodable", f"{part.encoding} {part.charset} part: {exc}") from exc
    if not exact:
        raise Untrackable("undecodable", f"{part.charset} does not round-trip exactly")
    return text


def _lines_fit(payload: bytes) -> bool:
    return all(len(line.rstrip(b"\r")) <= MAX_LINE for line in payload.split(b"\n"))


def encode(message: bytes, part: TextPart, text: str) -> tuple[bytes, bytes]:
    """The part's header block and body for ``text``, in the part's own charset and
    transfer encoding (quoted-printable instead of a 7bit/8bit one ``text`` no longer fits);
    raises :class:`Untrackable` when the charset cannot encode it."""
    header = message[part.header_start : part.header_end]
    original = message[part.body_start : part.body_end]
    try:
        payload = text.encode(part.charset, "surrogateescape")
    except (UnicodeError, LookupError) as exc:
        raise Untrackable("undecodable", f"{part.charset} cannot encode the new text") from exc
    encoding = part.encoding
    # Only ASCII is added, so a 7bit part stays what it was; a line can become too long.
    if encoding in ("7bit", "8bit") and not _lines_fit(payload):
        encoding = "quoted-printable"
    if encoding == "base64":
        # Line breaks after base64 text are not content: keep the part's own.
        trail = original[len(original.rstrip(b"\r\n")) :]
        return header, base64_lines(payload, part.newline) + trail
    if encoding == "quoted-printable":
        if encoding != part.encoding:
            header = CTE_FIELD.sub(b"", header)
            header += b"Content-Transfer-Encoding: quoted-printable" + part.newline
        return header, quoted_printable(payload, part.newline)
    return header, payload
