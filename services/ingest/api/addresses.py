"""The addresses of an API request: ``ann@example.com`` or ``Ann Example <ann@example.com>``.

The address itself is checked with the same RFC 5321 grammar as MAIL FROM and RCPT TO
(``shared.address``), so the API accepts exactly the addresses SMTP does; an address without
a domain, or one the grammar refuses, is a ``400`` naming the field. The display name is
free text (the MIME builder encodes it, RFC 2047) without control characters.

Owns parsing only; whether an address may be used (verified domain, suppression list) is
the policy checks' business.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from services.ingest.api import problems
from shared.address import AddressError, parse_mailbox

#: ``Name <address>``: the display name may be quoted (RFC 5322 3.4 ``display-name``).
_NAMED = re.compile(r'^\s*(?:"((?:[^"\\]|\\.)*)"|([^<>"]*?))\s*<([^<>]*)>\s*$', re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: RFC 5322 3.4: a display name is at most a header line's worth.
MAX_NAME = 256


@dataclass(frozen=True)
class Mailbox:
    """One parsed address: the display name ("" for none) and the RFC 5321 mailbox."""

    name: str
    address: str

    @property
    def domain(self) -> str:
        """The address's domain, lower case."""
        return self.address.rpartition("@")[2].lower()


def parse(text: str, field: str) -> Mailbox:
    """``text`` as a :class:`Mailbox`; a ``400`` problem naming ``field`` when it is not one."""
    match = _NAMED.match(text)
    if match is None:
        name, address = "", text.strip()
    else:
        quoted, plain, address = match.groups()
        name = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain.strip()
        address = address.strip()
    if _CONTROL.search(name) or len(name) > MAX_NAME:
        raise problems.fail(
            problems.INVALID_ADDRESS,
            f"display name of {text!r}: control characters or longer than {MAX_NAME}",
            field=field,
        )
    if "@" not in address:
        raise problems.fail(problems.INVALID_ADDRESS, f"{address!r} has no domain", field=field)
    try:
        mailbox = parse_mailbox(address)
    except AddressError as exc:
        raise problems.fail(problems.INVALID_ADDRESS, f"{address!r}: {exc}", field=field) from exc
    return Mailbox(name, mailbox)


def parse_all(texts: Sequence[str], field: str) -> list[Mailbox]:
    """Every address of a list field (``$.to``), each named by its index on error."""
    return [parse(text, f"{field}[{i}]") for i, text in enumerate(texts)]


def envelope(*groups: Sequence[Mailbox]) -> list[str]:
    """The envelope recipients of the groups (To, Cc, Bcc), each once (case-insensitive,
    first spelling kept, as the signer groups them)."""
    seen: set[str] = set()
    out: list[str] = []
    for group in groups:
        for mailbox in group:
            if mailbox.address.lower() not in seen:
                seen.add(mailbox.address.lower())
                out.append(mailbox.address)
    return out
