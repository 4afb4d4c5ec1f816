"""The RFC 5321 path grammar of MAIL FROM and RCPT TO, as a pure parser.

RFC 5321 4.1.2::

    Reverse-path / Forward-path = "<" [ A-d-l ":" ] Mailbox ">"
    Mailbox        = Local-part "@" ( Domain / address-literal )
    Local-part     = Dot-string / Quoted-string
    Dot-string     = Atom *("." Atom)
    Quoted-string  = DQUOTE *QcontentSMTP DQUOTE
    QcontentSMTP   = qtextSMTP / quoted-pairSMTP   ; %d32-33 / %d35-91 / %d93-126, "\\" %d32-126
    Domain         = sub-domain *("." sub-domain)  ; Let-dig [Ldh-str]
    address-literal = "[" ( IPv4 / "IPv6:" IPv6 / General-address-literal ) "]"

RFC 6531 3.3 extends atext, qtextSMTP and sub-domain with UTF-8 non-ASCII characters; whether
such an address may be used (the SMTPUTF8 parameter) is the caller's call: ingest's policy
refuses it without SMTPUTF8, the deliverer sends it only to a server that offers SMTPUTF8.
Ingest parses what clients send with it; the deliverer checks every address with it before
putting it on a command line. Length limits are RFC 5321 4.5.3.1 (local part 64 octets,
domain 255, path 256).

This module owns only the grammar: :func:`parse_path` returns the mailbox as it will be sent
on (a quoted local part that needs no quoting is unquoted, RFC 5321 4.1.2 "SHOULD NOT use
quoting unless needed"; the source route is dropped, RFC 5321 4.1.1.3 and appendix C) and the
rest of the argument (the ESMTP parameters). It deliberately does not accept:

- ``<Postmaster>`` without a domain (RFC 5321 4.1.1.3): Postline is an outbound relay with no
  local mailboxes, so there is nobody to deliver it to;
- a General-address-literal (``[tag:content]``): no standardized tag but ``IPv6`` exists;
- control characters or invalid UTF-8 anywhere (the session refuses a command line holding
  a control character before the address is parsed).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

#: RFC 5322 3.2.3 atext, plus RFC 6531 UTF8-non-ascii (any character past U+007F that is not a
#: C1 control and not a lone surrogate, which is how invalid UTF-8 arrives from aiosmtpd).
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u00a0-\ud7ff\ue000-\U0010ffff]"
_DOT_STRING = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
#: Quoted-string: qtextSMTP (printable ASCII but '"' and '\\', and space) or a quoted pair.
_QUOTED = re.compile(
    r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\u00a0-\ud7ff\ue000-\U0010ffff]|\\[\x20-\x7e])*"'
)
#: A sub-domain: Let-dig [Ldh-str] (RFC 5321 4.1.2), with U-labels per RFC 6531 3.3.
_LET_DIG = r"[A-Za-z0-9\u00a0-\ud7ff\ue000-\U0010ffff]"
_SUB_DOMAIN = re.compile(rf"{_LET_DIG}(?:[A-Za-z0-9\-\u00a0-\ud7ff\ue000-\U0010ffff]*{_LET_DIG})?")
#: The A-d-l source route: "@" Domain *( "," "@" Domain ) ":" (read, then ignored).
_SOURCE_ROUTE = re.compile(r"@[^,:<>@\s]+(?:,@[^,:<>@\s]+)*:")

MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_PATH = 256
MAX_LABEL = 63


class AddressError(ValueError):
    """The argument of MAIL FROM or RCPT TO is not an RFC 5321 path."""


@dataclass(frozen=True)
class Path:
    """A parsed path: the mailbox ("" for the null reverse-path ``<>``) and the parameters."""

    mailbox: str
    params: str


def _octets(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _local_part(text: str) -> str:
    """The local part as it will be sent: quoted only when it has to be."""
    if _DOT_STRING.fullmatch(text):
        return text
    if not _QUOTED.fullmatch(text):
        raise AddressError(f"bad local part {text!r}")
    inner = re.sub(r"\\(.)", r"\1", text[1:-1])
    # "john"@example.com is john@example.com (RFC 5321 4.1.2: quote only when needed).
    return inner if _DOT_STRING.fullmatch(inner) else text


def _address_literal(text: str) -> None:
    body = text[1:-1]
    try:
        if body[:5].lower() == "ipv6:":
            ipaddress.IPv6Address(body[5:])
        else:
            ipaddress.IPv4Address(body)
    except ValueError as exc:
        raise AddressError(f"bad address literal {text!r}") from exc


def _domain(text: str) -> str:
    if text.startswith("[") and text.endswith("]"):
        _address_literal(text)
        return text
    if not text or _octets(text) > MAX_DOMAIN:
        raise AddressError("bad domain length")
    for label in text.split("."):
        if not _SUB_DOMAIN.fullmatch(label) or _octets(label) > MAX_LABEL:
            raise AddressError(f"bad domain {text!r}")
    return text


def _split_mailbox(text: str) -> tuple[str, str]:
    """Local part and domain; the last "@" outside a quoted string separates them."""
    if text.startswith('"'):
        match = _QUOTED.match(text)
        if match is None or text[match.end() : match.end() + 1] != "@":
            raise AddressError("bad quoted local part")
        return text[: match.end()], text[match.end() + 1 :]
    local, at, domain = text.partition("@")
    if not at:
        raise AddressError("no domain")
    return local, domain


def parse_mailbox(text: str) -> str:
    """The RFC 5321 Mailbox ``text`` in the form to send on; :class:`AddressError` if invalid."""
    local, domain = _split_mailbox(text)
    local = _local_part(local)
    if _octets(local) > MAX_LOCAL_PART:
        raise AddressError("local part too long")
    return f"{local}@{_domain(domain)}"


def _bracketed(arg: str) -> tuple[str, str]:
    """The text between "<" and its ">" (quoted strings may hold ">"), and what follows."""
    match = re.match(r'<((?:"(?:[^"\\]|\\.)*"|[^<>"])*)>', arg)
    if match is None:
        raise AddressError("unbalanced angle brackets")
    return match.group(1), arg[match.end() :]


def parse_path(arg: str) -> Path:
    """Parse the argument after ``MAIL FROM:`` or ``RCPT TO:``.

    Clients that leave out the angle brackets are still served (Postfix's
    ``strict_rfc821_envelopes = no``): the mailbox then ends at the first space.
    """
    arg = arg.strip()
    if arg.startswith("<"):
        inner, rest = _bracketed(arg)
        if rest and not rest.startswith(" "):
            raise AddressError("text after the path")
    else:
        inner, _, rest = arg.partition(" ")
    if _octets(inner) + 2 > MAX_PATH:
        raise AddressError("path too long")
    if inner == "":
        return Path("", rest.strip())
    route = _SOURCE_ROUTE.match(inner)
    if route is not None:
        inner = inner[route.end() :]
    return Path(parse_mailbox(inner), rest.strip())
