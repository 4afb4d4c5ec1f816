"""Ingest's development start (``postline run``): a self-signed certificate, an empty users
file, and the banner lines that say where to send mail and whether it is scanned.

Called only by ``postline run`` through ``StageSpec.prepare``; ``postline ingest`` never
calls it and refuses to start when the certificate or users file is missing. A self-signed
certificate is fine on a laptop (mail clients are told to skip verification) and never
right in production, where the certificate must match the name clients connect to.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.ingest.auth import UsersFile, write_users
from services.ingest.config import (
    IngestConfig,
    ListenerConfig,
    ScanningConfig,
    load,
    scanner_url,
)
from shared.config import Config

#: Validity of the development certificate.
CERT_DAYS = 365


def self_signed_pem(hostname: str) -> tuple[bytes, bytes]:
    """A new ECDSA P-256 key and a self-signed certificate for ``hostname``, localhost and
    127.0.0.1 (as SANs: RFC 6125 section 6.4.4, clients ignore the CN), as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys([hostname, "localhost"])]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def ensure_certificate(config: IngestConfig) -> bool:
    """Write a self-signed certificate and key when both configured files are missing."""
    cert, key = config.tls.cert, config.tls.key
    if cert is None or key is None or cert.exists() or key.exists():
        return False  # one file present: the operator's, never overwritten
    cert_pem, key_pem = self_signed_pem(config.hostname or "localhost")
    _write(key, key_pem, 0o600)
    _write(cert, cert_pem, 0o644)
    return True


def ensure_users_file(config: IngestConfig) -> bool:
    """Write an empty users file when the configured one is missing."""
    path = config.users_file
    if path is None or path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_users(path, UsersFile())
    return True


def _where(listener: ListenerConfig) -> str:
    return f"{listener.host}:{listener.port}"


def _send_lines(relay: ListenerConfig, sender: str) -> list[str]:
    host, port, rcpt = relay.host, relay.port, "you@example.com"
    # Escaped CRLFs: the shell passes them through, Python turns them into line ends.
    lines = [f"From: {sender}", f"To: {rcpt}", "Subject: hello", "", "Hello from Postline.", ""]
    body = "\\r\\n".join(lines)
    call = f'smtplib.SMTP("{host}", {port}).sendmail("{sender}", ["{rcpt}"], "{body}")'
    return [
        f"send a test mail (relay, no AUTH from trusted networks): {_where(relay)}",
        f"  swaks --server {host}:{port} --from {sender} --to {rcpt}",
        f"  python3 -c 'import smtplib; {call}'",
    ]


def prepare(config: Config) -> list[str]:
    """Create the certificate and users file if missing; say where to send mail."""
    ingest = load(config)
    lines: list[str] = []
    if ensure_certificate(ingest):
        lines.append(f"ingest: wrote a self-signed TLS certificate to {ingest.tls.cert}")
    if ensure_users_file(ingest):
        lines.append(f"ingest: wrote an empty users file {ingest.users_file}")
    sender_domain = config.core.signer.get("signing_domain") or "example.com"
    sender = f"app@{sender_domain}"
    relays = [x for x in ingest.listeners if x.mode == "relay"]
    if relays:
        lines += _send_lines(relays[0], sender)
    for listener in ingest.listeners:
        if listener.mode == "relay":
            continue
        tls = "STARTTLS" if listener.mode == "submission" else "implicit TLS"
        lines.append(f"{listener.mode} with {tls} + AUTH: {_where(listener)}")
    if ingest.users_file is not None and any(x.mode != "relay" for x in ingest.listeners):
        source = "" if config.source == "(defaults)" else f"--config {config.source} "
        lines.append(f"  add a user: postline {source}user add NAME --domain {sender_domain}")
    lines.append(scanning_line(ingest.scanning))
    return lines


def scanning_line(scanning: ScanningConfig) -> str:
    """Whether messages will be scanned, and how to turn scanning on when they will not."""
    if not scanning.url or scanning.mode == "off":
        return (
            "content scanning: off (start rspamd with `make rspamd-up` and set "
            '[ingest.scanning] url = "http://127.0.0.1:21333")'
        )
    url = scanner_url(scanning.url)
    if _answers(url):
        return f"content scanning: on, rspamd at {url} (mode {scanning.mode})"
    if scanning.probe_at_start:
        return f"content scanning: off for this run, no rspamd at {url} (`make rspamd-up`)"
    what = "sent unscanned" if scanning.on_failure == "open" else "deferred with 451"
    return f"content scanning: rspamd at {url} does not answer, mail is {what} until it does"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
            return bool(response.read(16).strip() == b"pong")
    except OSError:  # URLError is an OSError; a refused connection, a timeout
        return False
