"""``postline config check`` on the sample config with every file it names really present.

The sample config points at the paths where the pods mount their Secrets
(``/etc/postline/...``), which do not exist here. This step copies the config into a
temporary directory, points those paths at files it creates there (a self-signed TLS
certificate and key, an empty users file, an empty DKIM key directory, 32-byte HMAC and
admin secrets, the store's DSN), and runs the real ``postline config check`` on the result,
so every stage's section is validated exactly as a pod would. Owns only this step.
"""

from __future__ import annotations

import datetime
import secrets
import tempfile
from pathlib import Path

from common import K8S, run, tool
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SAMPLE = K8S / "sample/postline.toml"
MOUNT_ROOT = "/etc/postline/"


def write_self_signed(cert: Path, key: Path, name: str = "smtp.example.com") -> None:
    """A throwaway self-signed certificate and its key (PEM)."""
    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def materialise(root: Path) -> None:
    """Create under ``root`` every file the sample config names below /etc/postline/."""
    (root / "tls").mkdir(parents=True)
    write_self_signed(root / "tls/tls.crt", root / "tls/tls.key")
    (root / "users").mkdir()
    (root / "users/users.json").write_text("{}\n")
    (root / "dkim").mkdir()
    for secret in ("hmac/verp.key", "admin/token"):
        path = root / secret
        path.parent.mkdir(exist_ok=True)
        path.write_text(secrets.token_hex(32) + "\n")
    # The store's DSN (Secret postline-store-db): well-formed, on a name that never resolves.
    (root / "store").mkdir()
    (root / "store/dsn").write_text("postgresql://postline:secret@postgres.invalid:5432/postline\n")


def check(sample: Path = SAMPLE) -> list[str]:
    """Problems ``postline config check`` reports on the sample (empty when it passes)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "etc"
        materialise(root)
        config = Path(tmp) / "postline.toml"
        config.write_text(sample.read_text().replace(MOUNT_ROOT, f"{root}/"))
        result = run([tool("postline"), "--config", str(config), "config", "check", str(config)])
    if result.returncode != 0:
        output = (result.stdout + result.stderr).replace(str(config), str(sample))
        return [f"postline config check {sample}: {output.strip()}"]
    return []
