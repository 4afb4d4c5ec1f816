"""Where a domain wants its TLS-RPT reports: the ``_smtp._tls.<domain>`` TXT record.

Owns the lookup (dnspython, the configured nameservers) and turning the record's ``rua``
URIs (parsed by ``shared.tlsrpt_record``, which ``postline domain check`` uses too) into
the targets the sender knows: a mailbox for ``mailto:`` (percent-decoded, ``?`` fields
dropped) and the URL for ``https:``. No record, several, or an invalid one: no targets
(RFC 8460 3: the domain is taken not to implement TLSRPT). A DNS failure (SERVFAIL,
timeout) is not an answer: :class:`RuaLookupFailed`, and the sender tries again later.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

import dns.asyncresolver
import dns.exception
import dns.resolver

from shared.tlsrpt_record import TlsRptInvalid, tlsrpt_name, tlsrpt_rua


class RuaLookupFailed(Exception):
    """The TXT lookup failed for a reason that may pass (not "no record")."""


@dataclass(frozen=True)
class Rua:
    """One reporting URI: ``scheme`` ``mailto`` (``target`` an address) or ``https``
    (``target`` the URL)."""

    scheme: str
    target: str


def parse_record(texts: list[str]) -> list[Rua]:
    """The reporting targets of the TXT records ``texts`` (each its strings joined); ``[]``
    when there is no valid TLSRPTv1 record."""
    try:
        uris = tlsrpt_rua(texts)
    except TlsRptInvalid:
        return []
    found: list[Rua] = []
    for uri in uris or ():
        scheme, _, rest = uri.partition(":")
        if scheme.lower() == "mailto":
            rua = Rua("mailto", unquote(rest.split("?", 1)[0]))
        else:
            rua = Rua("https", uri)
        if rua not in found:
            found.append(rua)
    return found


async def lookup_rua(resolver: dns.asyncresolver.Resolver, domain: str) -> list[Rua]:
    """The reporting URIs ``domain`` publishes (``[]``: none); raises
    :class:`RuaLookupFailed` on a DNS failure."""
    name = tlsrpt_name(domain) + "."
    try:
        answer = await resolver.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        raise RuaLookupFailed(f"{name} TXT: {exc.__class__.__name__}: {exc}") from exc
    texts = [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]
    return parse_record(texts)
