"""DKIM key material every part of Postline makes or reads: new keys, the ``p=`` value and the
DNS TXT record that publishes a key.

Used by the signer (``postline dkim keygen``, its key directory) and by the tenant domain
commands (``postline tenant domain add``), which is why it lives in ``shared/``. It does not
sign (``services/signer/dkim.py``), store keys (the key directory, ``shared.sealing``) nor ask
DNS (``shared.dnscheck``).
"""

from __future__ import annotations

import base64
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

Algorithm = Literal["rsa", "ed25519"]
ALGORITHMS: tuple[Algorithm, ...] = ("rsa", "ed25519")
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

#: RFC 8301 section 3.2: signers MUST use RSA keys of at least 1024 bits; we require 2048,
#: the size every large mailbox provider recommends, and refuse anything smaller.
MIN_RSA_BITS = 2048

#: RFC 1035 3.3.14: one character-string of a TXT record holds at most 255 octets.
TXT_STRING_MAX = 255


def generate_private_key(algorithm: Algorithm, rsa_bits: int = MIN_RSA_BITS) -> bytes:
    """A new private key as PKCS#8 PEM (RSA with e = 65537, or Ed25519 per RFC 8463)."""
    key: PrivateKey
    if algorithm == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(pem: bytes) -> PrivateKey:
    """Parse an unencrypted PEM private key; ``ValueError`` when it is not an RSA or Ed25519
    key we can sign with."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError(f"{type(key).__name__} is not a DKIM key type (rsa, ed25519)")
    return key


def algorithm_of(key: PrivateKey) -> Algorithm:
    """The ``k=`` name of ``key``'s type."""
    return "rsa" if isinstance(key, rsa.RSAPrivateKey) else "ed25519"


def public_p(key: PrivateKey) -> str:
    """The ``p=`` value: base64 SubjectPublicKeyInfo for RSA (RFC 6376 3.6.1), the raw
    32-byte public key for Ed25519 (RFC 8463 section 4.2)."""
    public = key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raw = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return base64.b64encode(raw).decode()


def txt_record(algorithm: Algorithm, p: str) -> str:
    """The TXT value publishing a key (RFC 6376 3.6.1)."""
    return f"v=DKIM1; k={algorithm}; p={p}"


def record_name(selector: str, domain: str) -> str:
    """Where a selector's key is published: ``<selector>._domainkey.<domain>``."""
    return f"{selector}._domainkey.{domain}"


def txt_strings(value: str) -> list[str]:
    """``value`` cut into the character-strings of one TXT record (an RSA-2048 key's record
    is about 410 octets: it needs two; resolvers join them, RFC 6376 3.6.2.2)."""
    return [value[i : i + TXT_STRING_MAX] for i in range(0, len(value), TXT_STRING_MAX)] or [""]


def zone_strings(value: str) -> str:
    """A TXT value as zone-file character-strings: quoted, split every 255 octets."""
    return " ".join(f'"{chunk}"' for chunk in txt_strings(value))
