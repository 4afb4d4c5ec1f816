"""Header work on the raw message bytes: read fields, add trace and missing headers, take tags.

Everything here operates on ``bytes`` and leaves every byte it does not add or remove
untouched (8-bit bodies, UTF-8 headers per RFC 6532, odd folding), because the signer signs
what we hand on and the recipient must see what the client sent. This module does not decide
whether a message is acceptable; ``policy/message.py`` does, using :func:`parse`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, getaddresses

from shared.address import AddressError, parse_mailbox

_NAME = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_UNSAFE = re.compile(r"[^\x21-\x27\x2a-\x5b\x5d-\x7e\u00a0-\ud7ff\ue000-\U0010ffff]")
#: An obsolete source route inside an angle address (RFC 5322 4.4 obs-route).
_ROUTE = re.compile(r"<\s*@")
CONTROL_PREFIX = "x-postline-"
MAX_TAG_VALUE = 256


@dataclass(frozen=True)
class Field:
    """One header field: its name and its raw bytes (all folded lines, with their CRLFs)."""

    name: str  # lower case; "" for lines before the first named field
    raw: bytes

    @property
    def value(self) -> str:
        """The unfolded value (RFC 5322 2.2.3), UTF-8 decoded, surrounding blanks stripped."""
        _, _, value = self.raw.partition(b":")
        text = value.decode("utf-8", errors="replace")
        return re.sub(r"\r?\n(?=[ \t])", "", text).strip()


@dataclass(frozen=True)
class Message:
    """A message split into its header fields and the rest (blank line and body)."""

    fields: list[Field]
    #: b"\r\n" + body, or b"" when the message has no body: a view of the received bytes,
    #: not a copy (a 25 MiB body is copied once, by :func:`complete`, not at every step).
    rest: bytes | memoryview

    def get(self, name: str) -> list[str]:
        """The values of every field called ``name`` (case-insensitive), in order."""
        lname = name.lower()
        return [f.value for f in self.fields if f.name == lname]

    def to_bytes(self) -> bytes:
        """The message bytes again (identical to the input when nothing was changed)."""
        return b"".join(f.raw for f in self.fields) + self.rest


def parse(data: bytes) -> Message:
    """Split raw message bytes into header fields and the rest, keeping every byte."""
    fields: list[Field] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        line = data[pos:end]
        if line in (b"\r\n", b"\n"):
            break
        match = _NAME.match(line)
        if match is None and fields and line[:1] in (b" ", b"\t"):
            fields[-1] = Field(fields[-1].name, fields[-1].raw + line)
        elif match is None and fields and fields[-1].name == "":
            fields[-1] = Field("", fields[-1].raw + line)
        else:
            name = match.group(1).decode("ascii").lower() if match else ""
            fields.append(Field(name, line))
        pos = end
    return Message(fields, memoryview(data)[pos:])


def mailbox_domains(value: str) -> list[str] | None:
    """Domains of the mailboxes in an address header value; ``None`` when any of them is not
    a plain ``local@domain`` (RFC 5322 3.4): ``ceo@other.example@bench.example``, a source
    route (``<@other.example:app@bench.example>``, obsolete syntax that RFC 5322 4.4 forbids
    generating and that mail clients display differently), or text that does not parse."""
    if _ROUTE.search(value):
        return None
    pairs = getaddresses([value])
    if not pairs or any(not addr for _, addr in pairs):
        return None
    domains: list[str] = []
    for _, addr in pairs:
        try:
            mailbox = parse_mailbox(addr)
        except AddressError:
            return None
        domains.append(mailbox.rpartition("@")[2].lower().rstrip("."))
    return domains


def from_domains(message: Message) -> list[str] | None:
    """Domains of the From header's mailboxes; ``None`` unless there is exactly one From
    field (RFC 5322 3.6) holding only well-formed mailboxes (:func:`mailbox_domains`)."""
    values = message.get("from")
    return mailbox_domains(values[0]) if len(values) == 1 else None


def bad_field_name(message: Message) -> bool:
    """Whether a header line is neither a field nor a continuation: a field name must be
    printable US-ASCII without ":" (RFC 5322 2.2), so a NUL or any control character in a
    name, or a line without a colon, makes the header section malformed."""
    return any(f.name == "" for f in message.fields)


def take_field(message: Message, name: str) -> tuple[Message, list[str]]:
    """Remove every field called ``name``; the message without them and their values."""
    lname = name.lower()
    kept = [f for f in message.fields if f.name != lname]
    values = [f.value for f in message.fields if f.name == lname]
    return Message(kept, message.rest), values


def take_tags(message: Message, max_tags: int) -> tuple[Message, dict[str, str]]:
    """Remove ``X-Postline-<Name>`` control headers; their values become tags ``<name>``."""
    tags: dict[str, str] = {}
    kept: list[Field] = []
    for f in message.fields:
        if not f.name.startswith(CONTROL_PREFIX):
            kept.append(f)
            continue
        name = f.name[len(CONTROL_PREFIX) :]
        if name and len(tags) < max_tags:
            tags[name] = f.value[:MAX_TAG_VALUE]
    return Message(kept, message.rest), tags


def clean(text: str, limit: int = 255) -> str:
    """``text`` safe inside a header comment: no controls, parentheses or backslashes."""
    return _UNSAFE.sub("?", text)[:limit] or "unknown"


def date_value(at: float) -> str:
    """An RFC 5322 3.3 date-time for ``at`` (epoch seconds), in UTC."""
    return format_datetime(datetime.fromtimestamp(at, UTC))


@dataclass(frozen=True)
class Trace:
    """What the Received header says about a session (RFC 5321 4.4)."""

    helo: str
    ip: str
    hostname: str
    message_id: str
    at: float
    tls: str | None = None
    auth_user: str | None = None
    smtputf8: bool = False
    extra: list[str] = field(default_factory=list)
    #: The ``with`` keyword when the message did not come over SMTP (``"HTTP"``: the API).
    via: str = ""

    def protocol(self) -> str:
        """The ``with`` keyword: ESMTP plus S for TLS and A for AUTH (RFC 3848, RFC 6531)."""
        if self.via:
            return self.via
        base = "UTF8SMTP" if self.smtputf8 else "ESMTP"
        return base + ("S" if self.tls else "") + ("A" if self.auth_user else "")

    def received(self) -> bytes:
        """The Received field, folded, ending in CRLF."""
        literal = f"[IPv6:{self.ip}]" if ":" in self.ip else f"[{self.ip}]"
        lines = [f"Received: from {clean(self.helo)} ({literal})"]
        lines.append(f"\tby {clean(self.hostname)} (Postline) with {self.protocol()}")
        lines.append(f"\tid {self.message_id}")
        if self.tls:
            lines.append(f"\t(using {clean(self.tls)})")
        if self.auth_user:
            lines.append(f"\t(authenticated as {clean(self.auth_user)})")
        lines[-1] += ";"
        lines.append(f"\t{date_value(self.at)}")
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def complete(message: Message, trace: Trace) -> bytes:
    """The message with Received prepended and Message-ID and Date added when missing
    (RFC 6409 8.2 and 8.3: a submission server may add them)."""
    added: list[Field] = []
    if not message.get("message-id"):
        value = f"<{trace.message_id}@{clean(trace.hostname)}>"
        added.append(Field("message-id", f"Message-ID: {value}\r\n".encode()))
    if not message.get("date"):
        added.append(Field("date", f"Date: {date_value(trace.at)}\r\n".encode()))
    fields = list(message.fields)
    if fields and not fields[-1].raw.endswith(b"\n"):
        # A header-only message without a final line break: close the last field first.
        fields[-1] = Field(fields[-1].name, fields[-1].raw + b"\r\n")
    head = trace.received() + b"".join(f.raw for f in fields + added)
    return head + message.rest
