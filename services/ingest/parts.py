"""A message's attachments, found on its raw bytes: the MIME tree walked, names decoded.

:func:`find` walks the multipart tree (RFC 2046) and forwarded messages (message/rfc822)
with ``bytes.find`` over the received bytes, parsing each part's header with
:func:`headers.parse` and its parameters with the standard library's ``email`` package
(RFC 2231 encoded and continued names; RFC 2047 encoded words, which Outlook and others put
in names although RFC 2047 5 forbids it). It copies no part's body: an :class:`Part` keeps
offsets into the message, and decodes only what a check asks for (the first bytes for a
program's magic number, the whole of a zip for its directory).

Where mail programs disagree about the structure, the walk errs towards finding more parts:
a line that starts with the boundary delimiter ends a part even with text after it, and
parts after the closing delimiter are read too, so an attachment hidden by a parser
difference is still seen. It does not judge anything (``policy/attachments.py``).
"""

from __future__ import annotations

import binascii
import email.message
import re
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.utils import collapse_rfc2231_value

from services.ingest.headers import Field, Message, parse

#: Nesting levels of multiparts and forwarded messages walked; deeper is refused, as
#: Postfix refuses past ``mime_nesting_limit`` (also 100): nothing may hide below the walk.
MAX_DEPTH = 100
#: Decoded bytes at the start of a part that :meth:`Part.head` gives by default (a PE
#: header's offset is at byte 60 and points a few hundred bytes further in practice).
HEAD = 4096


class TooDeep(ValueError):
    """The message nests multiparts or forwarded messages deeper than :data:`MAX_DEPTH`."""


@dataclass(frozen=True)
class Part:
    """A leaf of the MIME tree worth judging: one with a name, one marked as an attachment,
    or a non-text one (a program needs no name to be one)."""

    names: tuple[str, ...]  # every name it gives (filename, name), decoded, as given
    attachment: bool  # it has a name or Content-Disposition: attachment
    content_type: str  # lower case, "text/plain" when missing or malformed
    encoding: str  # Content-Transfer-Encoding, lower case ("7bit" when missing)
    source: bytes  # the whole message ...
    start: int  # ... and where this part's body lies in it
    end: int

    @property
    def encoded_size(self) -> int:
        """The body's size as sent (an upper bound of its decoded size)."""
        return self.end - self.start

    def size(self) -> int:
        """The decoded size (base64 counted from its characters, without decoding)."""
        data, start, end = self.source, self.start, self.end
        if self.encoding == "base64":
            blanks = sum(data.count(c, start, end) for c in (b"\r", b"\n", b" ", b"\t"))
            chars = end - start - blanks
            padding = sum(1 for c in (b"=", b"==") if data.rfind(c, start, end) >= end - 4)
            return max(0, chars * 3 // 4 - padding)
        if self.encoding == "quoted-printable":
            return len(binascii.a2b_qp(data[start:end]))
        return end - start

    def head(self, size: int = HEAD) -> bytes:
        """The first ``size`` decoded bytes (fewer when the body is shorter or broken)."""
        if self.encoding != "base64":
            return self.decoded(limit=size)[:size]
        # 4 characters per 3 bytes, plus line ends (CRLF per 76) and a line to cut at.
        encoded = size * 4 // 3 + size // 16 + 160
        chunk = self.source[self.start : min(self.end, self.start + encoded)]
        # Whole lines are whole base64 quanta (RFC 2045 6.8: 76 characters, a multiple of
        # 4), which a2b_base64 decodes skipping the line ends; other line lengths are cut.
        lines = chunk[: chunk.rfind(b"\n") + 1] if len(chunk) < self.end - self.start else chunk
        try:
            return binascii.a2b_base64(lines or chunk)[:size]
        except binascii.Error:
            chunk = chunk.translate(None, b" \t\r\n")
            return _base64(chunk[: len(chunk) // 4 * 4])[:size]

    def decoded(self, limit: int = 0) -> bytes:
        """The decoded body (or its first ``limit`` encoded bytes' worth when ``limit``)."""
        end = min(self.end, self.start + limit) if limit else self.end
        chunk = self.source[self.start : end]
        if self.encoding == "base64":
            return _base64(chunk)
        if self.encoding == "quoted-printable":
            return binascii.a2b_qp(chunk)
        return chunk


def may_have_attachments(msg: Message) -> bool:
    """Whether :func:`find` could find anything: ``False`` for a text message (or one with
    no Content-Type, which is text/plain) with no Content-Disposition and no name in its
    Content-Type, so most mail skips the walk. Errs towards ``True``."""
    for f in msg.fields:
        if f.name == "content-disposition":
            return True
        if f.name == "content-type":
            value = f.value.lower()
            if not value.startswith("text/") or "name" in value:
                return True
    return False


def find(data: bytes, msg: Message) -> list[Part]:
    """The leaves of ``msg`` (parsed from ``data``) worth judging, in message order;
    raises :class:`TooDeep` past :data:`MAX_DEPTH` levels."""
    found: list[Part] = []
    # (header fields, body start, body end, depth, the type a part has when it says none)
    stack = [(msg.fields, _body_start(data, len(data) - len(msg.rest)), len(data), 0, "")]
    while stack:
        fields, start, end, depth, default = stack.pop()
        entity = _Entity.of(fields, default)
        children: list[tuple[list[Field], int, int, int, str]] = []
        if entity.maintype == "multipart" and entity.boundary:
            inner = "message/rfc822" if entity.content_type == "multipart/digest" else ""
            for part_start, part_end in _split(data, start, end, entity.boundary):
                part_fields, body = _header(data, part_start, part_end)
                children.append((part_fields, body, part_end, depth + 1, inner))
        elif entity.content_type in _MESSAGES and entity.encoding in _IDENTITY:
            inner_fields, body = _header(data, start, end)
            children.append((inner_fields, body, end, depth + 1, ""))
        attachment = bool(entity.names) or entity.disposition == "attachment"
        if entity.names or (not children and (attachment or entity.maintype != "text")):
            found.append(
                Part(
                    names=entity.names,
                    attachment=attachment,
                    content_type=entity.content_type,
                    encoding=entity.encoding,
                    source=data,
                    start=start,
                    end=end,
                )
            )
        if children and depth + 1 > MAX_DEPTH:
            raise TooDeep(f"MIME structure nested deeper than {MAX_DEPTH} levels")
        stack.extend(reversed(children))
    return found


_MESSAGES = frozenset({"message/rfc822", "message/global"})
#: RFC 2046 5.2.1: a message/rfc822 part is 7bit, 8bit or binary; one sent as base64 anyway
#: is judged as a file (its name), not opened.
_IDENTITY = frozenset({"7bit", "8bit", "binary"})


@dataclass(frozen=True)
class _Entity:
    content_type: str
    boundary: bytes
    names: tuple[str, ...]
    disposition: str
    encoding: str

    @property
    def maintype(self) -> str:
        return self.content_type.partition("/")[0]

    @classmethod
    def of(cls, fields: list[Field], default: str) -> _Entity:
        content_type, boundary, disposition, encoding = "", b"", "", ""
        names: list[str] = []
        for f in fields:
            # The parameters are parsed only when there can be a name or a boundary among
            # them ("name" is in "filename" and in RFC 2231's "filename*0*"): the stdlib's
            # parameter parser is most of the walk's cost on everyday mail.
            if f.name == "content-type":
                lower = f.raw.lower()
                first = not content_type
                if first:  # RFC 2045 5.1: the type is what comes before the first ";"
                    value = lower.partition(b":")[2].partition(b";")[0]
                    content_type = _content_type(value.decode("utf-8", errors="replace"))
                if b"name" in lower:
                    params = _params(f.name, f.value)[1:]
                    if first:
                        raw = next((v for k, v in params if k == "boundary"), "")
                        boundary = raw.encode("utf-8", errors="surrogateescape")
                    names += [v for k, v in params if k == "name" and v]
                elif first and content_type.startswith("multipart/"):
                    boundary = _boundary(f)
            elif f.name == "content-disposition":
                lower = f.raw.lower()
                if not disposition:
                    value = lower.partition(b":")[2].partition(b";")[0].strip()
                    disposition = value.decode("utf-8", errors="replace")
                if b"name" in lower:
                    names += [v for k, v in _params(f.name, f.value)[1:] if k == "filename" and v]
            elif f.name == "content-transfer-encoding" and not encoding:
                encoding = f.value.strip().lower()
        unique = tuple(dict.fromkeys(names))
        return cls(
            content_type or default or "text/plain",
            boundary,
            unique,
            disposition,
            encoding or "7bit",
        )


def _content_type(value: str) -> str:
    """RFC 2045 5.2: a malformed type is text/plain."""
    value = value.strip().lower()
    major, slash, minor = value.partition("/")
    return value if slash and major and minor else "text/plain"


def _params(header: str, value: str) -> list[tuple[str, str]]:
    """A Content-Type or Content-Disposition value's (key, value) pairs, the type first;
    RFC 2231 continued and encoded values joined and decoded, RFC 2047 words decoded."""
    holder = email.message.Message()
    holder[header] = value
    out: list[tuple[str, str]] = []
    for key, raw in holder.get_params(header=header, failobj=[]):
        text = collapse_rfc2231_value(raw)
        out.append((key.lower(), _words(text) if "=?" in text else text))
    return out


#: A plain ``boundary=`` parameter (RFC 2046 5.1.1: its characters include no backslash and
#: no quote), quoted or not; anything else goes to the stdlib's parser.
_BOUNDARY = re.compile(rb';\s*boundary\s*=\s*(?:"([^"\\\r\n]*)"|([^";]+))', re.IGNORECASE)


def _boundary(f: Field) -> bytes:
    """The boundary of a multipart's Content-Type field (b"" when it has none). A plain
    one (the word "boundary" once, no RFC 2231 "*", no escape) is read with a regular
    expression, a fraction of the stdlib parser's time on every multipart message; any
    other by the stdlib's parser, so a crafted header cannot make the two disagree."""
    raw = f.raw
    if b"*" not in raw and b"\\" not in raw and raw.lower().count(b"boundary") == 1:
        found = _BOUNDARY.search(raw)
        if found is None:
            return b""
        quoted = found.group(1)
        return quoted if quoted is not None else found.group(2).strip()
    value = next((v for k, v in _params(f.name, f.value)[1:] if k == "boundary"), "")
    return value.encode("utf-8", errors="surrogateescape")


def _words(text: str) -> str:
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, UnicodeDecodeError, ValueError):
        return text  # an unknown charset or broken word: judged as given


def _body_start(data: bytes, rest: int) -> int:
    """Where the body begins, past the blank line that ends the header (at ``rest``)."""
    if data.startswith(b"\r\n", rest):
        return rest + 2
    return rest + 1 if data.startswith(b"\n", rest) else rest


def _header(data: bytes, start: int, end: int) -> tuple[list[Field], int]:
    """The header fields of the entity at ``data[start:end]`` and where its body starts."""
    if data.startswith((b"\r\n", b"\n"), start, end):
        return [], _body_start(data, start)
    crlf = data.find(b"\n\r\n", start, end)
    bare = data.find(b"\n\n", start, crlf if crlf >= 0 else end)
    blank = bare if bare >= 0 else crlf
    if blank < 0:
        return parse(data[start:end]).fields, end
    return parse(data[start : blank + 1]).fields, _body_start(data, blank + 1)


def _split(data: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """The body parts of a multipart at ``data[start:end]`` (RFC 2046 5.1.1): between lines
    that begin with ``--boundary``; the line break before a delimiter belongs to it."""
    delimiter = b"--" + boundary
    parts: list[tuple[int, int]] = []
    current = -1  # where the open part starts; -1: in the preamble or after the close
    pos = start
    while True:
        at = data.find(delimiter, pos, end)
        if at < 0:
            break
        pos = at + len(delimiter)
        if at != start and data[at - 1] != 0x0A:
            continue  # not at the start of a line
        if current >= 0:
            stop = at - 1 if at > start else at
            parts.append((current, stop - 1 if stop > current and data[stop - 1] == 0x0D else stop))
        eol = data.find(b"\n", pos, end)
        closing = data.startswith(b"--", pos, end)
        current = -1 if closing or eol < 0 else eol + 1
    if current >= 0:
        parts.append((current, end))  # no closing delimiter: the part runs to the end
    return parts


def _base64(chunk: bytes) -> bytes:
    try:
        return binascii.a2b_base64(chunk)
    except binascii.Error:
        return b""
