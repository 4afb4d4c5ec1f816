"""DANE for SMTP (RFC 7672): an MX host's DNSSEC-validated TLSA records decide its TLS.

Owns: :class:`DaneSource`, the :class:`~.policy.PolicySource` that looks up
``_25._tcp.<mx host>`` TLSA when the MX host is secure (its MX and address answers were
validated, RFC 7672 2.2), and :class:`DaneCheck`, the :data:`~.policy.PeerCheck` that matches
the certificate chain the host presented against the usable records (RFC 7672 3.1, RFC 6698
2.1, with RFC 7671's rules for SMTP). Does not connect: ``session.py`` applies the
:class:`~.policy.HostPolicy` and runs the check after the handshake.

Decisions, in RFC 7672's order:

- DANE off, an insecure MX host, an insecure TLSA answer, or a validated "no TLSA"
  (NXDOMAIN / NODATA): no DANE policy (``None``; MTA-STS or our own configuration decide).
- The TLSA lookup failed for a secure host (SERVFAIL, which is what a validating resolver
  answers for bogus data, or a timeout): the host is refused (``dnssec-invalid``, RFC 8460)
  and the next MX host is tried; with none left the mail defers (RFC 7672 2.2.1).
- Usable records (DANE-TA(2) or DANE-EE(3), selector 0 or 1, matching type 0, 1 or 2, RFC
  7672 3.1): STARTTLS is mandatory and the chain must match; no WebPKI validation.
- Records, none usable (only PKIX-TA(0) / PKIX-EE(1), which SMTP cannot use, RFC 7672 3.1.3,
  or unknown parameters): STARTTLS is still mandatory, without authentication (RFC 7672 2.2:
  the domain asked for TLS; "encrypt but do not authenticate" is what is left). Such a
  session is reported as DANE with ``verified`` false.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from services.deliverer.mx import SecureAnswer
from services.deliverer.outcome import DeliveryFailure
from services.deliverer.transport.policy import (
    HostPolicy,
    PolicyReport,
    ResultType,
    Security,
    TlsCheckFailed,
)

#: The longest chain we walk from the leaf to a DANE-TA trust anchor.
MAX_CHAIN = 10


class Usage(enum.IntEnum):
    """TLSA certificate usages (RFC 6698 2.1.1, named in RFC 7218)."""

    PKIX_TA = 0
    PKIX_EE = 1
    DANE_TA = 2
    DANE_EE = 3


#: Matching type -> the digest it compares (0: the selected data itself).
_DIGESTS: dict[int, Callable[[bytes], bytes] | None] = {
    0: None,
    1: lambda data: hashlib.sha256(data).digest(),
    2: lambda data: hashlib.sha512(data).digest(),
}
_DIGEST_SIZES = {1: 32, 2: 64}


@dataclass(frozen=True)
class Tlsa:
    """One TLSA record (RFC 6698 2.1)."""

    usage: int
    selector: int
    mtype: int
    data: bytes

    @classmethod
    def parse(cls, text: str) -> Tlsa:
        """``"3 1 1 ab12..."`` (presentation form); raises ValueError when malformed."""
        fields = text.split()
        if len(fields) < 4:
            raise ValueError(f"not a TLSA record: {text!r}")
        usage, selector, mtype = (int(field) for field in fields[:3])
        return cls(usage, selector, mtype, bytes.fromhex("".join(fields[3:])))

    @property
    def usable(self) -> bool:
        """RFC 7672 3.1: DANE-TA or DANE-EE, a known selector and matching type, and a
        digest of the right length (a truncated one can never match: RFC 7671 10.1.2)."""
        if self.usage not in (Usage.DANE_TA, Usage.DANE_EE) or self.selector not in (0, 1):
            return False
        if self.mtype not in _DIGESTS:
            return False
        size = _DIGEST_SIZES.get(self.mtype)
        return size is None or len(self.data) == size

    def matches(self, cert: x509.Certificate) -> bool:
        """The certificate (selector 0) or its SubjectPublicKeyInfo (1) matches."""
        if self.selector == 0:
            selected = cert.public_bytes(serialization.Encoding.DER)
        else:
            try:
                selected = cert.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            # A key cryptography cannot read: an unknown algorithm raises UnsupportedAlgorithm
            # (not a ValueError), a known one with bad parameters ValueError or TypeError.
            except (ValueError, TypeError, UnsupportedAlgorithm):
                return False
        digest = _DIGESTS[self.mtype]
        return (digest(selected) if digest is not None else selected) == self.data


class TlsaLookup(Protocol):
    """What :class:`DaneSource` needs of the resolver (``MxResolver.lookup``)."""

    async def lookup(self, name: str, rdtype: str) -> SecureAnswer:
        """Records as text with the answer's AD bit; raises :class:`DeliveryFailure`."""
        ...


class DaneSource:
    """The DANE :class:`~.policy.PolicySource`: TLSA records of secure MX hosts."""

    def __init__(
        self,
        resolver: TlsaLookup,
        *,
        enabled: bool = True,
        port: int = 25,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self._resolver = resolver
        self._enabled = enabled
        self._port = port
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))

    async def host_policy(self, domain: str, host: str, secure_mx: bool) -> HostPolicy | None:
        """The DANE policy for MX ``host`` of ``domain`` (see the module docstring)."""
        if not self._enabled or not secure_mx:
            return None  # RFC 7672 2.2: DANE needs a validated MX host and addresses
        base = host.lower().rstrip(".")
        name = f"_{self._port}._tcp.{base}"
        try:
            answer = await self._resolver.lookup(name, "TLSA")
        except DeliveryFailure as exc:
            # RFC 7672 2.2.1: a secure host whose TLSA records cannot be had (bogus data or
            # an unreachable resolver) must not be used, or an attacker could suppress them.
            why = exc.detail or exc.reply.text
            return HostPolicy(
                Security.DANE,
                require_tls=True,
                refused=TlsCheckFailed(
                    ResultType.DNSSEC_INVALID, f"TLSA lookup for {name} failed: {why}"
                ),
                report=PolicyReport(domain=domain, type="tlsa"),
            )
        if not answer.secure or not answer.values:
            return None  # insecure TLSA, or securely none: not a DANE host
        report = PolicyReport(domain=domain, type="tlsa", strings=tuple(answer.values))
        usable = tuple(record for record in _parse_all(answer.values) if record.usable)
        if not usable:
            # RFC 7672 2.2: TLSA records exist, so the domain wants TLS; none can
            # authenticate, so encrypt without authenticating, never in cleartext.
            return HostPolicy(Security.DANE, require_tls=True, enforce=True, report=report)
        return HostPolicy(
            Security.DANE,
            require_tls=True,
            verify_webpki=False,  # DANE replaces the CA store (RFC 7672 3.1)
            check=DaneCheck(usable, self._clock),
            enforce=True,
            report=report,
        )


def _parse_all(texts: Sequence[str]) -> list[Tlsa]:
    records = []
    for text in texts:
        try:
            records.append(Tlsa.parse(text))
        except ValueError:
            continue  # malformed: unusable, like an unknown usage
    return records


@dataclass(frozen=True)
class DaneCheck:
    """The :data:`~.policy.PeerCheck` of a DANE host: its chain against usable records."""

    records: tuple[Tlsa, ...]
    clock: Callable[[], datetime.datetime]

    def __call__(self, ssl_object: ssl.SSLObject, host: str) -> None:
        """Raise :class:`TlsCheckFailed` unless the presented chain matches."""
        try:
            chain = [x509.load_der_x509_certificate(der) for der in peer_chain(ssl_object)]
        except ValueError as exc:
            raise TlsCheckFailed(
                ResultType.VALIDATION_FAILURE, f"unreadable certificate from {host}: {exc}"
            ) from exc
        check_chain(chain, host, self.records, self.clock())


def peer_chain(ssl_object: ssl.SSLObject) -> list[bytes]:
    """The certificates the server presented, leaf first, as DER, unverified.

    DANE must see the chain as sent (a DANE-TA anchor is one of its certificates), but the
    handshake did not verify it, and ``getpeercert`` gives only the leaf. Python 3.13 made
    ``get_unverified_chain`` public; on 3.11 and 3.12 only the C-level object behind the
    :class:`ssl.SSLObject` has it (since 3.10), returning certificate objects.
    """
    public = getattr(ssl_object, "get_unverified_chain", None)
    if public is not None:  # Python 3.13+: a list of DER bytes
        return [bytes(der) for der in public() or []]
    inner = ssl_object._sslobj  # type: ignore[attr-defined]  # private before 3.13
    # _ssl.ENCODING_DER (2), not re-exported by the ssl module.
    return [cert.public_bytes(2) for cert in inner.get_unverified_chain() or []]


def check_chain(
    chain: Sequence[x509.Certificate],
    host: str,
    records: Sequence[Tlsa],
    now: datetime.datetime,
) -> None:
    """RFC 7672 3.1: accept when a DANE-EE record matches the leaf (names and dates
    ignored, 3.1.1), or when a DANE-TA record matches a certificate of the chain that the
    leaf chains up to by issuer names and signatures, the leaf names ``host`` (3.2.2) and
    no certificate below the anchor has expired (3.1.2). Raises :class:`TlsCheckFailed`."""
    if not chain:
        raise TlsCheckFailed(ResultType.VALIDATION_FAILURE, f"{host} presented no certificate")
    leaf = chain[0]
    if any(r.usage == Usage.DANE_EE and r.matches(leaf) for r in records):
        return
    anchors = [r for r in records if r.usage == Usage.DANE_TA]
    path = _path_to_anchor(chain, anchors) if anchors else None
    if path is None:
        raise TlsCheckFailed(
            ResultType.VALIDATION_FAILURE,
            f"no TLSA record of {host} matches its certificate chain "
            f"(leaf {leaf.subject.rfc4514_string()})",
        )
    try:
        named = names_host(leaf, host)
    except (ValueError, x509.DuplicateExtension) as exc:  # signed, yet not RFC 5280
        raise TlsCheckFailed(
            ResultType.VALIDATION_FAILURE,
            f"unreadable certificate extensions of {leaf.subject.rfc4514_string()}: {exc}",
        ) from exc
    if not named:
        raise TlsCheckFailed(
            ResultType.CERTIFICATE_HOST_MISMATCH,
            f"certificate does not name {host}: {', '.join(_dns_names(leaf)) or '(no names)'}",
        )
    for cert in path[:-1]:  # the anchor itself is trusted by its TLSA record, as is
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise TlsCheckFailed(
                ResultType.CERTIFICATE_EXPIRED,
                f"{cert.subject.rfc4514_string()} is valid from "
                f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
            )


def _path_to_anchor(
    chain: Sequence[x509.Certificate], anchors: Sequence[Tlsa]
) -> list[x509.Certificate] | None:
    """Leaf, issuers..., and the first issuer matching a DANE-TA record, each signed by the
    next; the presented order is not trusted (RFC 8446 4.4.2 lets it vary). The anchor must
    be one of the presented certificates (RFC 7672 3.1.2: servers include it)."""
    current = chain[0]
    path = [current]
    remaining = list(chain[1:])
    for _ in range(MAX_CHAIN):
        if len(path) > 1 and any(record.matches(current) for record in anchors):
            return path
        parent = next((c for c in remaining if _issued(current, c)), None)
        if parent is None:
            break
        remaining.remove(parent)
        path.append(parent)
        current = parent
    return None


def _issued(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """``parent`` is a CA and signed ``child`` (issuer name and signature)."""
    try:
        constraints = parent.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    except (ValueError, x509.DuplicateExtension):
        return False  # extensions we cannot read (the chain is as the server sent it): no CA
    if not constraints.ca:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False  # UnsupportedAlgorithm: the parent's key is of a type we cannot read
    return True


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [
            str(attr.value) for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ]
    return list(san.get_values_for_type(x509.DNSName))


def names_host(cert: x509.Certificate, host: str) -> bool:
    """The certificate names ``host``: a DNS subjectAltName (the common name only when
    there is no subjectAltName, RFC 6125 6.4.4), ``*`` allowed as a whole leftmost label
    matching exactly one label (RFC 7672 3.2.3)."""
    wanted = host.lower().rstrip(".")
    parent = wanted.split(".", 1)[1] if "." in wanted else None
    for presented in _dns_names(cert):
        name = presented.lower().rstrip(".")
        if name == wanted or (name.startswith("*.") and name[2:] == parent):
            return True
    return False
