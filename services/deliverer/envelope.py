"""The MAIL FROM and RCPT TO paths as bytes on the wire, for what the server supports.

Owns: :func:`encode_path`. Addresses reach the deliverer as ingest accepted them (RFC 5321
4.1.2: quoted local parts like ``"john smith"@example.com``, UTF-8 with SMTPUTF8), and are
written here exactly, never re-parsed as RFC 5322 display addresses (which would turn a
quoted local part with a space into two words). The internationalised cases follow RFC 6531:
UTF-8 only when the server offered SMTPUTF8; otherwise a UTF-8 domain with an ASCII local
part goes as its A-label (IDNA), and a UTF-8 local part cannot go at all
(:class:`NeedsSmtpUtf8`, a permanent 5.6.7 for that recipient). An address that is not an
RFC 5321 mailbox (a NUL, a control character, an unquoted space) raises
:class:`~shared.address.AddressError` and is never put on a command line.
"""

from __future__ import annotations

from shared.address import AddressError, parse_mailbox

__all__ = ["AddressError", "NeedsSmtpUtf8", "encode_path", "header_needs_utf8", "needs_utf8"]


class NeedsSmtpUtf8(ValueError):
    """The address has a UTF-8 local part and the server did not offer SMTPUTF8."""


def needs_utf8(address: str) -> bool:
    """Whether ``address`` has characters beyond ASCII."""
    return not address.isascii()


def header_needs_utf8(smtputf8: bool, data: bytes) -> bool:
    """Whether the message itself (not its addresses) needs SMTPUTF8: the client sent it
    with SMTPUTF8 and its header section has UTF-8 (RFC 6532 3.2). A message the client
    flagged SMTPUTF8 whose header is ASCII does not need the extension (Postfix delivers
    such mail to any server too); raw 8-bit in the header of mail sent without SMTPUTF8 is
    legacy 8-bit mail, handled as such (8BITMIME), not bounced as internationalised."""
    if not smtputf8:
        return False
    end = data.find(b"\r\n\r\n")
    return not data[: len(data) if end < 0 else end].isascii()


def encode_path(address: str, *, utf8: bool) -> bytes:
    """``<mailbox>`` as bytes (``<>`` for the null reverse-path).

    ``utf8``: the server offered SMTPUTF8 and the transaction asks for it. Raises
    ``AddressError`` for a malformed address and ``NeedsSmtpUtf8`` when it cannot be sent.
    """
    if address == "":
        return b"<>"
    mailbox = parse_mailbox(address)
    if mailbox.isascii():
        return b"<" + mailbox.encode("ascii") + b">"
    if utf8:
        return b"<" + mailbox.encode("utf-8") + b">"
    local, _, domain = mailbox.rpartition("@")
    if not local.isascii():
        raise NeedsSmtpUtf8(f"{address!r} has a UTF-8 local part")
    try:
        a_label = domain.encode("idna")
    except UnicodeError as exc:
        raise AddressError(f"domain {domain!r} has no IDNA form") from exc
    return b"<" + local.encode("ascii") + b"@" + a_label + b">"
