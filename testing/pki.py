"""A throw-away test CA and a server certificate for 127.0.0.1 / localhost (cryptography).

Shared by the ingest tests and the end-to-end harness (`tests/e2e/`).

Chains (DANE tests): ``root = make_ca("Root")``, ``mid = make_ca("Mid", issuer=root)``,
``leaf = make_leaf(mid, ["mx1.dane.test"])``; ``server_context(leaf, [mid])`` is an SSL
server context presenting leaf and intermediate; :func:`tlsa` gives a TLSA record's data.
Dates come from the ``now`` given (default: the real clock).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pki:
    """Paths of the CA certificate and the server's certificate and key."""

    ca: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only the test CA."""
        return ssl.create_default_context(cafile=str(self.ca))

    def server_context(self) -> ssl.SSLContext:
        """A server context presenting the server certificate (for sinks and endpoints)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(directory: Path, cn: str = "localhost") -> Pki:
    """Write a CA and a server certificate signed by it into ``directory``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Postline Test CA"))
        .issuer_name(_name("Postline Test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [x509.DNSName(cn), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def der(self) -> bytes:
        """The certificate in DER."""
        return self.cert.public_bytes(serialization.Encoding.DER)

    def spki(self) -> bytes:
        """The SubjectPublicKeyInfo in DER (TLSA selector 1)."""
        return self.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _now(now: datetime.datetime | None) -> datetime.datetime:
    return now if now is not None else datetime.datetime.now(datetime.UTC)


def make_ca(
    cn: str,
    issuer: Issued | None = None,
    *,
    now: datetime.datetime | None = None,
    ca: bool = True,
) -> Issued:
    """A CA certificate, self-signed or signed by ``issuer`` (an intermediate);
    ``ca=False`` makes one whose BasicConstraints forbid issuing (a broken chain)."""
    at = _now(now)
    key = ec.generate_private_key(ec.SECP256R1())
    signer = issuer.key if issuer is not None else key
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer is not None else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(at - datetime.timedelta(minutes=5))
        .not_valid_after(at + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )
    return Issued(cert, key)


def make_leaf(
    issuer: Issued | None,
    names: Sequence[str],
    *,
    now: datetime.datetime | None = None,
    valid: datetime.timedelta = datetime.timedelta(days=1),
    expired: bool = False,
) -> Issued:
    """A server certificate for DNS ``names`` (and 127.0.0.1), signed by ``issuer`` or
    self-signed (``None``); ``expired``: its validity ended an hour before ``now``."""
    at = _now(now)
    key = ec.generate_private_key(ec.SECP256R1())
    cn = names[0] if names else "no-name"
    start = at - datetime.timedelta(days=2) if expired else at - datetime.timedelta(minutes=5)
    end = at - datetime.timedelta(hours=1) if expired else at + valid
    san = x509.SubjectAlternativeName(
        [*(x509.DNSName(n) for n in names), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer is not None else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(issuer.key if issuer is not None else key, hashes.SHA256())
    )
    return Issued(cert, key)


def tlsa(usage: int, selector: int, mtype: int, of: Issued) -> str:
    """A TLSA record's presentation data (``"3 1 1 <hex>"``) for certificate ``of``."""
    selected = of.der() if selector == 0 else of.spki()
    digest = {0: selected, 1: hashlib.sha256(selected).digest()}.get(mtype)
    if digest is None:
        digest = hashlib.sha512(selected).digest()
    return f"{usage} {selector} {mtype} {digest.hex()}"


def server_context(leaf: Issued, chain: Sequence[Issued] = ()) -> ssl.SSLContext:
    """A TLS server context presenting ``leaf`` followed by ``chain`` (intermediates, and
    the DANE-TA anchor when it should be sent)."""
    pem = b"".join(c.cert.public_bytes(serialization.Encoding.PEM) for c in (leaf, *chain))
    key = leaf.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp) / "chain.pem", Path(tmp) / "key.pem"
        cert_path.write_bytes(pem)
        key_path.write_bytes(key)
        context.load_cert_chain(cert_path, key_path)
    return context
