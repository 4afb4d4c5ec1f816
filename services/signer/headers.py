"""Reading and adding header fields of raw RFC 5322 messages, without re-encoding them.

The message stays ``bytes`` end to end (8-bit bodies and SMTPUTF8 headers included): this
module only finds the header block, reads a field, and prepends new fields. It does not
parse MIME or change anything already in the message.
"""

from __future__ import annotations

import re
from email.utils import getaddresses

_END_OF_HEADERS = re.compile(rb"\r?\n\r?\n")


def header_block(message: bytes) -> bytes:
    """The header section (up to, not including, the empty line)."""
    match = _END_OF_HEADERS.search(message)
    return message if match is None else message[: match.start()]


def field_values(message: bytes, name: str) -> list[str]:
    """The unfolded values of every field called ``name`` (UTF-8, errors replaced)."""
    pattern = re.compile(
        rb"^" + re.escape(name.encode()) + rb"[ \t]*:(.*(?:\r?\n[ \t].*)*)",
        re.IGNORECASE | re.MULTILINE,
    )
    block = header_block(message)
    return [
        re.sub(r"\r?\n(?=[ \t])", "", m.group(1).decode("utf-8", "replace")).strip()
        for m in pattern.finditer(block)
    ]


def has_field(message: bytes, name: str) -> bool:
    """Whether the header section has a field called ``name``."""
    return bool(field_values(message, name))


def from_domain(message: bytes) -> str:
    """The lower-cased domain of the (first) From address; "" when there is none.

    RFC 7489 3.1: DMARC aligns with this domain, so it picks the DKIM signing domain.
    """
    values = field_values(message, "From")
    if not values:
        return ""
    for _, address in getaddresses(values[:1]):
        if "@" in address:
            return address.rpartition("@")[2].strip().rstrip(".").lower()
    return ""


def prepend(message: bytes, fields: list[tuple[str, str]]) -> bytes:
    """``message`` with ``fields`` (name, value) added at the top, CRLF-terminated."""
    if not fields:
        return message
    added = b"".join(f"{name}: {value}\r\n".encode() for name, value in fields)
    return added + message
