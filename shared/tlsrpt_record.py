"""The TLS-RPT DNS record (RFC 8460 3): ``_smtp._tls.<domain>`` TXT, ``v=TLSRPTv1; rua=...``.

Owns the record's syntax only: :func:`parse_tlsrpt` (one record) and :func:`tlsrpt_rua`
(all TXT records at the name, of which exactly one must be a TLS-RPT record). Sending reports
is not here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# RFC 8460 3: field-delim = *WSP ";" *WSP; tlsrpt-rua = %s"rua=" tlsrpt-uri
# *(*WSP "," *WSP tlsrpt-uri); a URI is mailto: or https: (RFC 3986; "," and "!" must be
# percent-encoded in it); extensions are name=value like MTA-STS's.
_DELIM = re.compile(r"[ \t]*;[ \t]*")
_URI_DELIM = re.compile(r"[ \t]*,[ \t]*")
_EXTENSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}=[\x21-\x3a\x3c\x3e-\x7e]+")
_URI = re.compile(r"(?:mailto:[^\s,;!]+@[^\s,;!]+|https://[^\s,;!/]+(?:/[^\s,;!]*)?)", re.I)


class TlsRptInvalid(Exception):
    """The record is not a valid RFC 8460 3 record."""


def tlsrpt_name(domain: str) -> str:
    """Where ``domain`` publishes its TLS-RPT record."""
    return f"_smtp._tls.{domain.lower().rstrip('.')}"


def parse_tlsrpt(record: str) -> tuple[str, ...]:
    """The ``rua`` URIs of one ``v=TLSRPTv1`` record; raises :class:`TlsRptInvalid`."""
    fields = _DELIM.split(record.strip(" \t"))
    if fields[0] != "v=TLSRPTv1":
        raise TlsRptInvalid(f"does not start with v=TLSRPTv1: {record!r}")
    if fields[-1] == "" and len(fields) > 1:
        fields.pop()
    rua: tuple[str, ...] = ()
    for field in fields[1:]:
        if field.startswith("rua="):
            uris = tuple(_URI_DELIM.split(field[4:]))
            bad = [uri for uri in uris if not _URI.fullmatch(uri)]
            if bad:
                raise TlsRptInvalid(f"rua is not mailto: or https: URIs: {', '.join(bad)}")
            rua = rua or uris
        elif not _EXTENSION.fullmatch(field):
            raise TlsRptInvalid(f"malformed field {field!r}")
    if not rua:
        raise TlsRptInvalid("no rua= (where reports go)")
    return rua


def tlsrpt_rua(records: Sequence[str]) -> tuple[str, ...] | None:
    """The ``rua`` URIs from all TXT records at ``_smtp._tls.<domain>``, or ``None`` when there
    is no TLS-RPT record; raises :class:`TlsRptInvalid` when the one record is invalid or
    there are several (RFC 8460 3: then the domain is taken to have none)."""
    candidates = [r for r in records if r.startswith("v=TLSRPTv1") and _DELIM.match(r, 10)]
    if not candidates:
        return None
    if len(candidates) > 1:
        raise TlsRptInvalid(f"{len(candidates)} v=TLSRPTv1 records: RFC 8460 3 wants exactly one")
    return parse_tlsrpt(candidates[0])
