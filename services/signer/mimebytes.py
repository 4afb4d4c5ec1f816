"""MIME on a message's raw bytes: entity spans and the two 7-bit transfer encodings.

Shared by tracking (``tracking/mime.py``, which rewrites text parts) and the 7-bit conversion
(``sevenbit.py``): both change some parts and must copy every other byte (headers,
boundaries, preambles, other parts) unchanged, which re-serialising with ``email`` would not.

- :func:`header_span`: where an entity's header block ends and its body starts;
- :func:`body_parts`: the body parts of a multipart body (RFC 2046 5.1: a delimiter is
  ``--boundary`` at the start of a line, the line break before it belongs to it, the close
  delimiter ends the part), raising :class:`MimeStructureError` without a close delimiter;
- :func:`quoted_printable` and :func:`base64_lines`: RFC 2045 6.7 / 6.8 encodings with the
  entity's own line breaks and lines of 76 characters at most.
"""

from __future__ import annotations

import binascii
import re

MAX_DEPTH = 32  # nesting past this is an attack or a broken generator, not mail
#: Content whose bytes a signature or encryption covers: never changed (RFC 1847, RFC 8551).
SIGNED_TYPES = frozenset(
    {
        "multipart/signed",  # RFC 1847 (S/MIME, PGP/MIME)
        "multipart/encrypted",
        "application/pkcs7-mime",  # RFC 8551 3.2: signed-data or enveloped-data
        "application/x-pkcs7-mime",
    }
)
#: A Content-Transfer-Encoding field with its folded continuation lines.
CTE_FIELD = re.compile(rb"^content-transfer-encoding[ \t]*:.*(?:\r?\n[ \t].*)*\r?\n", re.I | re.M)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_BASE64_LINE = 57  # bytes per 76-character line (RFC 2045 6.8)


class MimeStructureError(ValueError):
    """The MIME structure cannot be followed (a multipart body without its close delimiter)."""


def header_span(data: bytes, start: int, end: int) -> tuple[int, int]:
    """Where the entity in ``data[start:end]`` ends its header block (just past the last
    field's line break) and starts its body (just past the empty line)."""
    for blank in (b"\r\n", b"\n"):
        if data.startswith(blank, start):  # no header fields: RFC 2045 defaults apply
            return start, start + len(blank)
    match = _HEADER_END.search(data, start, end)
    if match is None:
        return end, end  # a header without a body
    line_break = 2 if data[match.start() : match.start() + 1] == b"\r" else 1
    return match.start() + line_break, match.end()


def body_parts(data: bytes, start: int, end: int, boundary: str) -> list[tuple[int, int]]:
    """The body parts of the multipart body ``data[start:end]`` as (start, end) spans."""
    marker = re.escape(boundary.encode("ascii"))
    delimiter = re.compile(rb"^--" + marker + rb"(--)?[ \t]*(\r?\n|\Z)", re.M)
    spans: list[tuple[int, int]] = []
    opened: int | None = None
    for match in delimiter.finditer(data, start, end):
        if opened is not None:
            close = match.start()
            for line_break in (b"\n", b"\r"):  # the line break before belongs to the delimiter
                if close > opened and data[close - 1 : close] == line_break:
                    close -= 1
            spans.append((opened, close))
        if match.group(1):
            return spans
        opened = match.end()
    raise MimeStructureError(f"multipart without its closing boundary {boundary!r}")


def quoted_printable(payload: bytes, newline: bytes) -> bytes:
    """``payload`` quoted-printable, its line breaks (``newline``) kept as line breaks and
    any other CR or LF encoded; lines of 76 characters at most (RFC 2045 6.7)."""
    pairs = payload.count(b"\r\n")
    # A CR or LF that is not part of the part's line break is content: b2a_qp's text mode
    # would write it raw (a bare CR or LF in the message), its binary mode encodes it.
    lone = payload.count(b"\r") != pairs or (newline == b"\r\n" and payload.count(b"\n") != pairs)
    encoded = binascii.b2a_qp(payload, quotetabs=False, istext=not lone, header=False)
    # b2a_qp breaks lines with CRLF when the payload's first line break is one, else "\n".
    if newline == b"\r\n" and b"\r\n" not in encoded:
        return encoded.replace(b"\n", b"\r\n")
    return encoded


def base64_lines(payload: bytes, newline: bytes) -> bytes:
    """``payload`` in base64, lines of 76 characters joined by ``newline`` (RFC 2045 6.8)."""
    lines = [
        binascii.b2a_base64(payload[i : i + _BASE64_LINE], newline=False)
        for i in range(0, len(payload), _BASE64_LINE)
    ]
    return newline.join(lines)
