"""The parsed form of a message at the bounce domain: one parse, cheap repeated reads.

Owns parsing raw bytes into a tree of :class:`BounceMessage` (the standard library's
lenient ``compat32`` parser, which reads ``message/delivery-status`` into field blocks).
The parsers ask each part for its content type and a few headers many times over (every
parser walks the tree; measured on the corpora with cProfile: about 30 content-type reads
per message, a linear scan of the part's headers each); a :class:`BounceMessage` answers
them from a per-part index that any change to the part's headers discards.

The standard library's parser reads a message line by line in Python (about a third of the
time the bouncer spends on a message, measured on the corpora with cProfile).
:class:`_Builder` builds the same tree from whole-text searches: headers, multipart
boundaries, preamble and epilogue, the line ending that belongs to a boundary, digests'
default type, ``message/*`` bodies as messages, ``message/delivery-status`` field blocks,
all as ``email.feedparser`` does them. It only takes messages with one kind of line ending
and without the oddities the standard parser repairs (no start boundary, doubled boundary
lines, a nested boundary that an outer one could match, a misplaced envelope ``From``
line); for those the standard parser runs, so the tree is always the one
``email.message_from_bytes(raw, policy=compat32)`` gives (tests compare them).
"""

from __future__ import annotations

import email
import re
from email.message import Message
from email.policy import compat32
from typing import Any


class BounceMessage(Message):
    """A ``Message`` whose header and content-type reads are indexed once per part."""

    _headers: list[tuple[str, Any]]  # Message's own list of (name, raw value)

    def __init__(self, policy: Any = compat32) -> None:
        super().__init__(policy)
        self._index: dict[str, Any] | None = None
        self._ctype: str | None = None
        self._charset: list[Any] | None = None  # [get_content_charset()] once read
        #: The part's decoded text (``report.decode_part``), kept by its first reader: the
        #: parsers tried in turn read the same text parts (measured on the corpora: 524
        #: decodes of 284 parts).
        self.decoded: str | None = None

    def _fields(self) -> dict[str, Any]:
        index = self._index
        if index is None:
            # Built from the last field to the first, so the first of a name is kept.
            index = self._index = {field[0].lower(): field for field in reversed(self._headers)}
        return index

    def get(self, name: str, failobj: Any = None) -> Any:
        """The first value of header ``name`` (as ``Message.get``), from the index."""
        index = self._index if self._index is not None else self._fields()
        lname = name.lower()
        found = index.get(lname)
        if found is None:
            return failobj
        if isinstance(found, tuple):
            # Fetched once (compat32's fetch is a pure function of the raw field).
            found = index[lname] = _Fetched(self.policy.header_fetch_parse(*found))
        return found.value

    def __contains__(self, name: str) -> bool:
        """Whether a header ``name`` is there (as ``Message.__contains__``), from the index:
        get_param asks it before every parameter read."""
        return name.lower() in self._fields()

    def get_content_type(self) -> str:
        """``Message.get_content_type``, read once."""
        if self._ctype is None:
            self._ctype = super().get_content_type()
        return self._ctype

    def get_content_charset(self, failobj: Any = None) -> Any:
        """``Message.get_content_charset``, read once (its parameter parse is costly)."""
        if self._charset is None:
            self._charset = [super().get_content_charset()]
        found = self._charset[0]
        return failobj if found is None else found

    def set_fields(self, fields: list[tuple[str, str]]) -> None:
        """Replace all headers with ``fields`` (name, raw value) at once (the builder)."""
        self._headers = fields
        self._changed()

    def _changed(self) -> None:
        self._index = None
        self._ctype = None
        self._charset = None
        self.decoded = None

    def set_payload(self, payload: Any, charset: Any = None) -> None:
        """``Message.set_payload``; forgets the decoded text."""
        super().set_payload(payload, charset)
        self.decoded = None

    # Every way compat32's Message changes its headers (or its default type) forgets the
    # index: the parser itself adds headers one by one and sets digest parts' default type.
    def __setitem__(self, name: str, val: Any) -> None:
        super().__setitem__(name, val)
        self._changed()

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name)
        self._changed()

    def set_raw(self, name: str, value: Any) -> None:
        """``Message.set_raw``; forgets the index."""
        super().set_raw(name, value)
        # Inlined _changed(): the parser calls this once per header line.
        self._index = None
        self._ctype = None
        self._charset = None
        self.decoded = None

    def add_header(self, _name: str, _value: str, **_params: Any) -> None:
        """``Message.add_header``; forgets the index."""
        super().add_header(_name, _value, **_params)
        self._changed()

    def replace_header(self, _name: str, _value: Any) -> None:
        """``Message.replace_header``; forgets the index."""
        super().replace_header(_name, _value)
        self._changed()

    def set_default_type(self, ctype: str) -> None:
        """``Message.set_default_type``; forgets the content type."""
        super().set_default_type(ctype)
        self._changed()

    def set_boundary(self, boundary: str) -> None:
        """``Message.set_boundary``; forgets the index."""
        super().set_boundary(boundary)
        self._changed()


class _Fetched:
    """A header value as ``get`` returns it, kept in the index."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def parse_bytes(raw: bytes) -> Message:
    """``raw`` parsed leniently (compat32) into :class:`BounceMessage` parts."""
    # As email.message_from_bytes: bytes that are not ASCII survive as surrogates.
    return parse_text(raw.decode("ascii", errors="surrogateescape"))


def parse_text(text: str) -> Message:
    """Like :func:`parse_bytes` for text (a message quoted inside another's body)."""
    eol = _line_ending(text)
    if eol is not None:
        try:
            return _Builder(eol).message(text, "text/plain", ())
        except _Unusual:
            pass
    return standard_parse(text)


def standard_parse(text: str) -> Message:
    """The standard library's parse of ``text`` into :class:`BounceMessage` parts."""
    return email.message_from_string(text, _class=BounceMessage, policy=compat32)


class _Unusual(Exception):
    """A message the fast builder leaves to the standard parser."""


# email.feedparser's header line test for a field's first line: a name and colon, or "From ".
_HEADER_LINE = re.compile(r"From |[\041-\071\073-\176]*:")
# One header field: its first line, then its continuation lines (with the line endings
# between them). Searched from a line start, each match ends where the next line begins
# (no "^": a MULTILINE anchor makes the engine try every position).
_FIELDS_LF = re.compile(r"([^ \t\n][^\n]*)((?:\n[ \t][^\n]*)*)")
_FIELDS_CRLF = re.compile(r"([^ \t\r\n][^\r\n]*)((?:\r\n[ \t][^\r\n]*)*)")
# A field with a name, as compat32's header_source_parse reads it: the name, and the value
# without the blanks after the colon, with its folding and without its final line ending.
_NAMED_LF = re.compile(r"([\041-\071\073-\176]+):[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)")
_NAMED_CRLF = re.compile(r"([\041-\071\073-\176]+):[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)")


def _line_ending(text: str) -> str | None:
    """The message's one line ending ("\n" or "\r\n"), ``None`` when it mixes them."""
    if "\r" not in text:
        return "\n"
    crlf = text.count("\r\n")
    return "\r\n" if crlf == text.count("\r") == text.count("\n") else None


class _Builder:
    """Builds the tree email.feedparser would, from whole-text searches (module docstring)."""

    def __init__(self, eol: str) -> None:
        self.eol = eol
        self.fields = _FIELDS_CRLF if eol == "\r\n" else _FIELDS_LF
        self.named = _NAMED_CRLF if eol == "\r\n" else _NAMED_LF

    def message(self, text: str, default_type: str, outer: tuple[str, ...]) -> BounceMessage:
        """One message or part: its headers, then its body by content type; ``outer`` are
        the separators of the multiparts it is in."""
        msg = BounceMessage()
        if default_type != "text/plain":
            msg.set_default_type(default_type)
        body = self._headers(msg, text)
        ctype = msg.get_content_type()
        if ctype == "message/delivery-status":
            msg.set_payload(self._field_blocks(body, outer))
        elif ctype.startswith("message/"):
            msg.attach(self.message(body, "text/plain", outer))
        elif ctype.startswith("multipart/"):
            self._multipart(msg, body, outer)
        else:
            msg.set_payload(body)
        return msg

    def _headers(self, msg: BounceMessage, text: str) -> str:
        """Set ``msg``'s headers from the top of ``text``; return the body."""
        eol = self.eol
        if text.startswith(eol):
            return text[len(eol) :]  # no headers; the blank line is no one's
        blank = text.find(eol + eol)
        block_end = len(text) if blank < 0 else blank + len(eol)
        body_start = len(text) if blank < 0 else blank + 2 * len(eol)
        start = 0
        while start < block_end and text[start] in " \t":  # continuations before any field
            following = text.find(eol, start, block_end)  # are dropped, as the standard
            start = block_end if following < 0 else following + len(eol)  # parser does
        fields: list[tuple[str, str]] = []
        pos, named, size = start, self.named, len(eol)
        while pos < block_end:
            # The run of "name: value" fields from ``pos``: a header block is almost always
            # only these, read by one finditer rather than a match call per field. Only
            # from a field: from any other line the scan would search ahead, and a block of
            # many such lines would cost its square.
            field = named.match(text, pos, block_end)
            if field is not None:
                fields.append((field[1], field[2]))  # header_source_parse's (name, value)
                pos = field.end() + size
                for field in named.finditer(text, pos, block_end):
                    if field.start() != pos:
                        break  # a line that is no field lies between: read below
                    fields.append((field[1], field[2]))
                    pos = field.end() + size
                if pos >= block_end:
                    break
            # Not "name: value": the envelope line, a nameless ":value", or the body.
            line = self.fields.match(text, pos, block_end)
            first = line.group(1) if line is not None else ""
            if not _HEADER_LINE.match(first):
                body_start = pos  # no blank line before the body
                break
            if first.startswith("From "):
                if pos:
                    raise _Unusual("envelope From line inside the headers")
                msg.set_unixfrom(first)
            pos = (line.end() if line is not None else pos) + size  # ":value": dropped
        msg.set_fields(fields)
        return text[body_start:]

    def _field_blocks(self, body: str, outer: tuple[str, ...]) -> list[Message | str]:
        """A delivery-status body as the standard parser reads it: one message per block of
        lines up to a blank line; after each block one blank line is dropped, and a further
        blank line starts an (empty) block of its own."""
        eol = self.eol
        blocks: list[Message | str] = []
        pos = 0
        while True:
            if body.startswith(eol, pos):
                blank = pos  # an empty block
            else:
                found = body.find(eol + eol, pos)
                blank = found + len(eol) if found >= 0 else -1
            end = len(body) if blank < 0 else blank
            blocks.append(self.message(body[pos:end], "text/plain", outer))
            if blank < 0:
                return blocks
            pos = blank + len(eol)
            if pos >= len(body):
                return blocks

    def _multipart(self, msg: BounceMessage, body: str, outer: tuple[str, ...]) -> None:
        boundary = msg.get_boundary()
        if boundary is None:
            raise _Unusual("multipart without a boundary")
        separator = "--" + boundary
        if any(o.startswith(separator) or separator.startswith(o) for o in outer):
            raise _Unusual("a boundary an outer one could match")
        # Boundary lines: the separator at a line start (a literal-led regex searches like
        # str.find; a "^" one would try every position).
        lines = re.compile(re.escape(separator) + r"(--)?[ \t]*(?:" + re.escape(self.eol) + r"|\Z)")
        found = [m for m in lines.finditer(body) if not m.start() or body[m.start() - 1] == "\n"]
        if not found or found[0].group(1):
            raise _Unusual("no start boundary")
        eol = self.eol
        if found[0].start():
            msg.preamble = body[: found[0].start()].removesuffix(eol)
        default = "message/rfc822" if msg.get_content_type() == "multipart/digest" else "text/plain"
        inner = (*outer, separator)
        for current, following in zip(found, [*found[1:], None], strict=True):
            if current.group(1):
                # The close boundary; what follows it is the epilogue.
                msg.epilogue = body[current.end() :]
                return
            end = len(body) if following is None else following.start()
            if end == current.end():
                raise _Unusual("doubled boundary lines")
            part = self.message(body[current.end() : end], default, inner)
            _drop_boundary_eol(_last_made(part), eol)
            msg.attach(part)
        # No close boundary: the standard parser notes a defect and keeps what it read.


def _last_made(part: Message) -> Message:
    """The message the standard parser made last while reading ``part`` (its ``_last``):
    a multipart itself, else the last message inside a ``message/*`` part, else the part."""
    payload = _stored(part)
    if part.get_content_maintype() == "multipart" or not isinstance(payload, list) or not payload:
        return part
    last = payload[-1]
    return _last_made(last) if isinstance(last, Message) else part


def _drop_boundary_eol(part: Message, eol: str) -> None:
    # RFC 2046 5.1.1: the line ending before a boundary belongs to the boundary. The
    # standard parser takes it from the message it made last, once per part read (also
    # when the part ended at the end of the text): so do we.
    if part.get_content_maintype() == "multipart":
        if part.epilogue == "":
            part.epilogue = None
        elif part.epilogue is not None:
            part.epilogue = part.epilogue.removesuffix(eol)
        return
    payload = _stored(part)
    if isinstance(payload, str):
        part.set_payload(payload.removesuffix(eol))


def _stored(part: Message) -> Any:
    # The payload as stored: get_payload() would decode text that holds undecoded bytes.
    return vars(part).get("_payload")
