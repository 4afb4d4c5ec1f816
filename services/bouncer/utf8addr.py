"""RFC 6533 address types in delivery status fields: ``rfc822`` or ``utf-8``.

Owns: :func:`address_field` (the ``<type>; <address>`` of Final-Recipient and
Original-Recipient for a DSN we write) and :func:`decode_utf8_address` (the address in a
``utf-8`` field a remote MTA wrote). An ASCII mailbox keeps the ``rfc822`` type RFC 3464 gives
it (printable ASCII, as RFC 3464 2.3.2 writes it); any other one (UTF-8, RFC 6531; or one
holding a control character) is written
as ``utf-8; <utf-8-addr-xtext>`` (RFC 6533 3), the 7-bit form: every character that is not a
QCHAR (printable ASCII but space, "\\", "+" and "=") becomes ``\\x{HEXPOINT}``. The DSN stays
7-bit, so it reaches a sender whose MX offers neither SMTPUTF8 nor 8BITMIME.
"""

from __future__ import annotations

import re

#: RFC 6533 3: QCHAR = %x21-2a / %x2c-3c / %x3e-5b / %x5d-7e.
_QCHAR = re.compile(r"[\x21-\x2a\x2c-\x3c\x3e-\x5b\x5d-\x7e]")
_EMBEDDED = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")
#: NUL has no HEXPOINT (RFC 6533 3 starts the 2-digit forms at 01): U+FFFD stands for it.
_REPLACEMENT = 0xFFFD


def _hexpoint(char: str) -> str:
    point = ord(char) or _REPLACEMENT
    # Two digits below U+0100, otherwise no leading zero (RFC 6533 3, HEXPOINT).
    return "\\x{" + (f"{point:02X}" if point < 0x100 else f"{point:X}") + "}"


def utf8_addr_xtext(address: str) -> str:
    """``address`` as RFC 6533 utf-8-addr-xtext (7-bit, one line)."""
    return "".join(c if _QCHAR.fullmatch(c) else _hexpoint(c) for c in address)


def address_field(address: str) -> str:
    """The value of a Final-Recipient (or Original-Recipient) field for ``address``."""
    if address.isascii() and address.isprintable():
        return f"rfc822; {address}"
    return f"utf-8; {utf8_addr_xtext(address)}"


def decode_utf8_address(value: str) -> str:
    """The address in the utf-8-addr-xtext or -unitext ``value`` (``\\x{...}`` undone)."""

    def char(match: re.Match[str]) -> str:
        point = int(match.group(1), 16)
        return chr(point) if point <= 0x10FFFF and not 0xD800 <= point <= 0xDFFF else "\ufffd"

    return _EMBEDDED.sub(char, value)
