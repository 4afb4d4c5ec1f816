"""Per-message TLS requirements: what a message asks of the connections that carry it.

Three sources, settled once at ingest into the Submission's (and so every Delivery's)
``require_tls``, ``requiretls`` and ``tls_optional`` (:func:`decide`):

- RFC 8689's ``REQUIRETLS`` on MAIL FROM (only accepted over TLS): verified TLS on every
  hop, an MX found through DNSSEC or an MTA-STS policy, a next hop that offers REQUIRETLS
  and is given it again; otherwise the message is returned with ``5.7.30``.
- Our own policy, "TLS required": the ``X-Postline-Require-TLS: yes|no`` control field (the
  tag ``require-tls``; ingest removes the field like every ``X-Postline-*`` one) and, when
  the message says nothing, the tenant's ``require_tls`` setting: verified TLS to the MX
  (WebPKI with the MX name, or DANE), otherwise deferred with ``4.7.5`` until it expires.
- ``TLS-Required: No`` (RFC 8689 5): the sender prefers delivery over security, so MTA-STS
  and DANE failures are reported but do not stop the message. RFC 8689 4.1: a message sent
  with REQUIRETLS ignores the field; so does one our policy requires TLS for (the tenant or
  the tag asked for it explicitly, the field is only a preference).

This module owns the vocabulary and the decision; it does no I/O. Ingest reads the
parameter and the fields, the deliverer enforces the result (``services/deliverer``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: The EHLO keyword and the MAIL FROM parameter (RFC 8689 2); the parameter has no value.
KEYWORD = "REQUIRETLS"
#: The header field by which a sender asks that TLS policy failures be ignored (RFC 8689 5).
HEADER = "TLS-Required"
#: The tag of the ``X-Postline-Require-TLS`` control field (``yes`` or ``no``).
TAG = "require-tls"
FIELD = "X-Postline-Require-TLS"

_YES = frozenset({"yes", "on", "true", "1"})
_NO = frozenset({"no", "off", "false", "0"})


@dataclass(frozen=True)
class TlsRequirement:
    """What a message asks of the connections that carry it (the record fields)."""

    #: TLS with a verified certificate (WebPKI with the MX name, or DANE) on every hop.
    require_tls: bool = False
    #: RFC 8689 REQUIRETLS: additionally a DNSSEC or MTA-STS MX and a REQUIRETLS next hop.
    requiretls: bool = False
    #: ``TLS-Required: No``: deliver even when MTA-STS or DANE checks fail (reported).
    tls_optional: bool = False


NONE = TlsRequirement()


def asked(values: Iterable[str]) -> bool | None:
    """What ``X-Postline-Require-TLS`` values (or ``require-tls`` tags) say: ``True`` when
    one says yes (the stricter wins), ``False`` when one says no and none yes, ``None``
    when none is a word we know (an unknown word must not weaken a tenant's policy)."""
    words = {v.strip().lower() for v in values}
    if words & _YES:
        return True
    if words & _NO:
        return False
    return None


def says_no(values: Iterable[str]) -> bool:
    """Whether ``TLS-Required`` field values ask for no TLS requirement (RFC 8689 5: the
    one defined value is ``No``; ABNF literals are case-insensitive). Any other value is
    ignored, as is the field when it appears more than once with different values."""
    words = {v.strip().lower() for v in values}
    return words == {"no"}


def decide(
    *, requiretls: bool, tag: bool | None, tenant: bool | None, tls_required_no: bool
) -> TlsRequirement:
    """The requirement of one message (see the module docstring for the order)."""
    if requiretls:
        return TlsRequirement(require_tls=True, requiretls=True)
    required = tag if tag is not None else bool(tenant)
    if required:
        return TlsRequirement(require_tls=True)
    return TlsRequirement(tls_optional=tls_required_no)
