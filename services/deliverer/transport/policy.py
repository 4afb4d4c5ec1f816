"""What one connection to one MX host must achieve, and what it achieved.

Owns: :class:`HostPolicy` (decided before connecting, from DANE, MTA-STS or our own
configuration, in that order of precedence: RFC 8461 2 leaves a host with usable TLSA
records to DANE), :class:`TlsCheckFailed` with the RFC 8460 4.3 result types, and
:class:`TlsOutcome`, the record of one connection attempt that becomes a ``tls_session``
event (and so a line of a TLS-RPT report). Does not look anything up (``dane.py``,
``mtasts.py``) and does not connect (``session.py`` applies a :class:`HostPolicy`).
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Security(enum.StrEnum):
    """What governed a session's transport security (the ``tls_security`` event field)."""

    NONE = "none"  # plaintext: the host offered no STARTTLS and nothing required it
    OPPORTUNISTIC = "opportunistic"  # encrypted if possible, not authenticated (RFC 7435)
    MTA_STS = "mta-sts"  # the domain's MTA-STS policy (RFC 8461)
    DANE = "dane"  # the MX host's DNSSEC-validated TLSA records (RFC 7672)
    REQUIRED = "required"  # our own policy: configuration, REQUIRETLS, the tenant's


class ResultType(enum.StrEnum):
    """RFC 8460 4.3: why a session failed its policy (the ``tls_failure`` event field)."""

    STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
    CERTIFICATE_HOST_MISMATCH = "certificate-host-mismatch"
    CERTIFICATE_EXPIRED = "certificate-expired"
    CERTIFICATE_NOT_TRUSTED = "certificate-not-trusted"
    VALIDATION_FAILURE = "validation-failure"
    TLSA_INVALID = "tlsa-invalid"
    DNSSEC_INVALID = "dnssec-invalid"
    DANE_REQUIRED = "dane-required"
    STS_POLICY_FETCH_ERROR = "sts-policy-fetch-error"
    STS_POLICY_INVALID = "sts-policy-invalid"
    STS_WEBPKI_INVALID = "sts-webpki-invalid"


class TlsCheckFailed(Exception):
    """A connection (or the decision to connect) did not meet its host's policy."""

    def __init__(self, result_type: ResultType, detail: str) -> None:
        super().__init__(f"{result_type}: {detail}")
        self.result_type = result_type
        self.detail = detail
        #: The connection attempt it ended, when there was one (the ``tls_session`` event).
        self.outcome: TlsOutcome | None = None


@dataclass(frozen=True)
class PolicyReport:
    """The policy as an RFC 8460 report names it (section 4.4, ``policy``)."""

    domain: str = ""  # the domain that published it (the recipient domain)
    type: str = "no-policy-found"  # "sts", "tlsa" or "no-policy-found"
    strings: tuple[str, ...] = ()  # the MTA-STS policy's lines, or the TLSA records
    mx_patterns: tuple[str, ...] = ()  # MTA-STS: the policy's ``mx`` patterns


NO_POLICY = PolicyReport()

#: Run on the TLS connection after the handshake with the MX host's name; raises
#: :class:`TlsCheckFailed` (DANE: the certificate chain against the TLSA records).
PeerCheck = Callable[[ssl.SSLObject, str], None]


@dataclass(frozen=True)
class HostPolicy:
    """What a connection to one MX host must achieve, decided before connecting."""

    security: Security
    #: Never plaintext: no STARTTLS or a failed handshake fails the check (and so defers,
    #: when ``enforce``) instead of falling back to cleartext.
    require_tls: bool = False
    #: Handshake against the CA store with the MX host's name (MTA-STS, verify_certs).
    verify_webpki: bool = False
    check: PeerCheck | None = None  # after the handshake (DANE)
    #: A failed check defers the mail; ``False`` (MTA-STS ``testing``): it is reported
    #: and the mail goes anyway, as the best connection that can be had.
    enforce: bool = True
    #: Not to be connected to at all (MTA-STS ``enforce``: an MX outside the policy's
    #: patterns; DANE: the TLSA lookup failed for a signed host).
    refused: TlsCheckFailed | None = None
    report: PolicyReport = NO_POLICY
    #: A failure to report without acting on it: an MTA-STS policy that could not be
    #: fetched, with none cached, leaves the configuration in charge (RFC 8461 5) and is
    #: still counted for TLS-RPT (RFC 8460 4.3.2.1, ``sts-policy-fetch-error``).
    noted: TlsCheckFailed | None = None
    #: The configuration's ``tls``/``verify_certs`` decide the connection; this policy
    #: only brings its ``report`` and ``noted`` failure.
    inherit: bool = False


#: No published policy and nothing configured: encrypt when offered, never authenticate.
OPPORTUNISTIC = HostPolicy(Security.OPPORTUNISTIC)


class PolicySource(Protocol):
    """Where a destination's published policy comes from (``dane.py``, ``mtasts.py``)."""

    async def host_policy(self, domain: str, host: str, secure_mx: bool) -> HostPolicy | None:
        """The policy for connections to MX ``host`` carrying mail for ``domain``, or
        ``None`` when this source has none for it. ``secure_mx``: the MX RRset (and the
        host's address records) were DNSSEC-validated, which DANE needs (RFC 7672 2.2)."""
        ...


@dataclass
class TlsOutcome:
    """What one connection attempt achieved: the ``tls_session`` event's fields."""

    security: Security
    report: PolicyReport = NO_POLICY
    version: str = ""  # "TLSv1.3"; "" when plaintext
    cipher: str = ""
    verified: bool = False  # the peer's certificate passed WebPKI or TLSA checks
    failure: ResultType | None = None  # the check that failed (reported even when not enforced)
    detail: str = ""  # the failure in words
    mx: str = ""
    mx_address: str = ""
    source: str = ""  # our address ("" = the system's choice)
