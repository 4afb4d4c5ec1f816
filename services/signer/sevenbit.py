"""8-bit MIME made 7-bit before signing (RFC 6152 3: convert, or bounce).

Owns: :func:`to_7bit`. The signer converts every 8-bit message it can, always, before the
DKIM signature is computed, so one signed copy goes to every MX: one that offers 8BITMIME
and one that does not (the deliverer never has to downgrade, which would break the
signature, RFC 6376 5.3). Each leaf part whose body has 8-bit octets and a 7bit, 8bit or
binary Content-Transfer-Encoding is re-encoded (RFC 2045 6.7 / 6.8):

- text/*: quoted-printable, or base64 when that is shorter (text that is mostly non-ASCII,
  such as Cyrillic or Japanese, triples in quoted-printable; base64 costs a third);
- anything else: base64;

its Content-Transfer-Encoding field replaced; the decoded octets are exactly the original
ones, so the charset label stays true. Multipart boundaries, preambles, the headers of other
entities and every part that is already 7-bit are copied byte for byte; a multipart or
message/rfc822 entity labelled 8bit or binary whose content is now 7-bit says ``7bit``
(RFC 2045 6.4; RFC 6152 allows converting inside an attached message). A message that is
not MIME (no MIME-Version and no Content-Type) becomes a text/plain MIME message: charset
utf-8 when its body is UTF-8, otherwise ``unknown-8bit`` (RFC 1428).

Left 8-bit (the deliverer then bounces it with 5.6.3 at a server without 8BITMIME): a header
section with 8-bit octets (SMTPUTF8 mail, RFC 6532, whose servers offer 8BITMIME anyway, or
raw 8-bit header fields: converting the body would not make the message 7-bit), a message
already DKIM-signed by its sender (converting would break that signature), signed or
encrypted content (RFC 1847, RFC 8551), 8-bit octets in a part that claims to be
quoted-printable or base64, and MIME it cannot follow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from services.signer.headers import has_field, header_block
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

_IDENTITY = frozenset({"7bit", "8bit", "binary"})
_MIME_VERSION = re.compile(rb"^mime-version[ \t]*:", re.I | re.M)
_CONTENT_TYPE = re.compile(rb"^content-type[ \t]*:", re.I | re.M)


@dataclass(frozen=True)
class Conversion:
    """What :func:`to_7bit` did: the message, how many parts it re-encoded, and why the
    message is still 8-bit when it is (``""`` when it is 7-bit now)."""

    data: bytes
    parts: int = 0
    kept_8bit: str = ""  # the reason, in words, when data still has 8-bit octets


def to_7bit(message: bytes) -> Conversion:
    """``message`` with its 8-bit parts re-encoded (see the module docstring); a 7-bit
    message is returned as it is."""
    if message.isascii():
        return Conversion(message)
    if not header_block(message).isascii():
        return Conversion(message, kept_8bit="8-bit octets in the header section")
    if has_field(message, "DKIM-Signature"):
        return Conversion(message, kept_8bit="already DKIM-signed by the sender")
    converter = _Converter(message)
    converter.entity((0, len(message)), "text/plain", 0, message=True)
    data = converter.result()
    kept = "" if data.isascii() else "; ".join(converter.kept) or "8-bit octets left"
    return Conversion(data, converter.parts, kept)


class _Converter:
    """One message: the byte ranges to replace, and what stays 8-bit."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.spans: list[tuple[int, int, bytes]] = []
        self.parts = 0
        self.kept: list[str] = []

    def keep(self, why: str) -> bool:
        """Note why something stays 8-bit; ``False`` (the entity is not 7-bit)."""
        if why not in self.kept:
            self.kept.append(why)
        return False

    def result(self) -> bytes:
        """The message with the planned replacements."""
        pieces: list[bytes] = []
        at = 0
        for start, end, replacement in sorted(self.spans, key=lambda span: span[0]):
            pieces += [self.data[at:start], replacement]
            at = end
        pieces.append(self.data[at:])
        return b"".join(pieces)

    def entity(self, span: tuple[int, int], default: str, depth: int, *, message: bool) -> bool:
        """Plan the edits that make the entity at ``span`` 7-bit; whether it will be.
        ``message``: the entity is a message (the top one, or an attached message/rfc822)."""
        data = self.data
        start, end = span
        header_end, body_start = header_span(data, start, end)
        header = data[start:header_end]
        if not header.isascii():
            return self.keep("8-bit octets in a header")
        if data[body_start:end].isascii():
            return True  # untouched, byte for byte
        if depth > MAX_DEPTH:
            return self.keep(f"MIME nested deeper than {MAX_DEPTH}")
        fields = BytesHeaderParser(policy=compat32).parsebytes(header)
        fields.set_default_type(default)
        ctype = fields.get_content_type()
        encoding = str(fields.get("Content-Transfer-Encoding", "7bit")).strip().lower()
        if ctype in SIGNED_TYPES:
            return self.keep(f"signed or encrypted content ({ctype})")
        if encoding not in _IDENTITY:
            return self.keep(f"8-bit octets in a {encoding} part")
        if ctype.startswith("multipart/"):
            inner = self.multipart((body_start, end), fields, depth)
        elif ctype == "message/rfc822":
            inner = self.entity((body_start, end), "text/plain", depth + 1, message=True)
        elif ctype.startswith("message/"):
            return self.keep(f"8-bit {ctype} content")
        else:
            self.leaf((start, header_end, body_start, end), ctype, message=message)
            return True
        if inner and encoding != "7bit":  # its content is 7-bit now: say so (RFC 2045 6.4)
            self.spans.append((start, header_end, _with_encoding(header, "7bit")))
        return inner

    def multipart(self, body: tuple[int, int], fields: Message, depth: int) -> bool:
        """Plan the edits of a multipart body's parts; whether all of it will be 7-bit."""
        boundary = fields.get_boundary()
        if not boundary or not boundary.isascii():  # RFC 2046 5.1.1: bchars are ASCII
            return self.keep("a multipart without a usable boundary")
        body_start, end = body
        try:
            spans = body_parts(self.data, body_start, end, boundary)
        except MimeStructureError as exc:
            return self.keep(str(exc))
        digest = fields.get_content_type() == "multipart/digest"
        child = "message/rfc822" if digest else "text/plain"
        clean = True
        at = body_start
        for part in spans:
            clean &= self.data[at : part[0]].isascii()  # the preamble and the delimiters
            clean &= self.entity(part, child, depth + 1, message=False)
            at = part[1]
        if not self.data[at:end].isascii():  # the close delimiter and the epilogue
            clean = self.keep("8-bit octets in a multipart preamble or epilogue")
        return clean

    def leaf(self, span: tuple[int, int, int, int], ctype: str, *, message: bool) -> None:
        """Re-encode one 8-bit leaf part (a message that was not MIME becomes MIME)."""
        start, header_end, body_start, end = span
        header, payload = self.data[start:header_end], self.data[body_start:end]
        newline = b"\r\n" if b"\r\n" in payload or b"\n" not in payload else b"\n"
        encoded = base64_lines(payload, newline)
        if payload.endswith(b"\n"):
            encoded += newline  # the message's last line break (base64 carries it as content)
        name = "base64"
        if ctype.startswith("text/"):
            quoted = quoted_printable(payload, newline)
            if len(quoted) <= len(encoded):
                encoded, name = quoted, "quoted-printable"
        if message and not _MIME_VERSION.search(header):
            header += b"MIME-Version: 1.0" + _line_break(header)
            if not _CONTENT_TYPE.search(header):
                charset = b"utf-8" if _is_utf8(payload) else b"unknown-8bit"  # RFC 1428
                header += b"Content-Type: text/plain; charset=" + charset + _line_break(header)
        self.spans.append((start, header_end, _with_encoding(header, name)))
        self.spans.append((body_start, end, encoded))
        self.parts += 1


def _with_encoding(header: bytes, name: str) -> bytes:
    """``header`` with its Content-Transfer-Encoding field(s) replaced by one saying ``name``."""
    kept = CTE_FIELD.sub(b"", header)
    return kept + b"Content-Transfer-Encoding: " + name.encode() + _line_break(header)


def _line_break(header: bytes) -> bytes:
    return b"\n" if header.endswith(b"\n") and not header.endswith(b"\r\n") else b"\r\n"


def _is_utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
