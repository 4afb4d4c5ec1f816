"""Where a domain wants its TLS-RPT reports: the ``_smtp._tls.<domain>`` TXT record.

Owns the lookup (dnspython, the configured nameservers) and parsing RFC 8460 3:
``v=TLSRPTv1; rua=mailto:reports@example.com,https://reports.example.com/v1``. TXT records
not starting with ``v=TLSRPTv1`` are ignored; when not exactly one is left the domain has
no usable record (RFC 8460 3: the sender must assume the domain does not implement
TLSRPT). A DNS failure (SERVFAIL, timeout) is not an answer: :class:`RuaLookupFailed`, and
the sender tries again later.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import dns.asyncresolver
import dns.exception
import dns.resolver

VERSION = "v=TLSRPTv1"


class RuaLookupFailed(Exception):
    """The TXT lookup failed for a reason that may pass (not "no record")."""


@dataclass(frozen=True)
class Rua:
    """One reporting URI: ``scheme`` ``mailto`` (``target`` an address) or ``https``
    (``target`` the URL)."""

    scheme: str
    target: str


def parse_record(texts: list[str]) -> list[Rua]:
    """The reporting URIs of the TXT records ``texts`` (each its strings joined); ``[]``
    when there is no valid TLSRPTv1 record."""
    records = [t for t in texts if _is_tlsrpt(t)]
    if len(records) != 1:
        return []
    fields: dict[str, str] = {}
    for part in records[0].split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name.strip():
            fields.setdefault(name.strip().lower(), value.strip())
    found: list[Rua] = []
    for uri in fields.get("rua", "").split(","):
        rua = _parse_uri(uri.strip())
        if rua is not None and rua not in found:
            found.append(rua)
    return found


def _is_tlsrpt(text: str) -> bool:
    head = text.lstrip().split(";", 1)[0].replace(" ", "")
    return head == VERSION


def _parse_uri(uri: str) -> Rua | None:
    scheme, colon, rest = uri.partition(":")
    if not colon:
        return None
    scheme = scheme.lower()
    if scheme == "mailto":
        address = unquote(rest.split("?", 1)[0]).strip()
        local, at, domain = address.rpartition("@")
        if at and local and domain and " " not in address:
            return Rua("mailto", address)
        return None
    if scheme == "https":
        parts = urlsplit(uri)
        if parts.hostname:
            return Rua("https", uri)
    return None  # http: is not allowed (RFC 8460 3: https only), nor anything else


async def lookup_rua(resolver: dns.asyncresolver.Resolver, domain: str) -> list[Rua]:
    """The reporting URIs ``domain`` publishes (``[]``: none); raises
    :class:`RuaLookupFailed` on a DNS failure."""
    name = f"_smtp._tls.{domain.rstrip('.')}."
    try:
        answer = await resolver.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        raise RuaLookupFailed(f"{name} TXT: {exc.__class__.__name__}: {exc}") from exc
    texts = [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]
    return parse_record(texts)
