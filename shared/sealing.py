"""Sealing tenants' DKIM private keys with the installation's key-encryption key (KEK).

Keys added at run time (``postline tenant domain add``) travel on ``postline.tenants`` to
every signer, so the compacted topic (and its backups, and anyone allowed to read it) must
never hold them in the clear. Each key is sealed with AES-256-GCM (NIST SP 800-38D) under a
256-bit KEK read from a file, a Kubernetes Secret mounted into the signer pods and wherever
the CLI runs:

- sealed = nonce (12 random bytes, fresh per seal: GCM must never reuse a nonce under one
  key, SP 800-38D 8.2; 2^32 seals per KEK keep the random-collision risk below 2^-32) +
  ciphertext + 16-byte tag;
- associated data = tenant id, domain and selector, so a sealed key copied into another
  tenant's or domain's record (by a bug or by someone who may write the topic but does not
  hold the KEK) fails to open instead of signing for a domain it was not made for.

KEK rotation: write a new KEK file, move the old one to ``secrets.kek_previous_files`` and
point ``secrets.kek_file`` at the new one (signers and CLI alike); new keys are sealed with
the new KEK, old ones still open with the previous. Re-sealing existing keys under the new
KEK (``tenant domain add`` of a new selector, then removing the old) lets the old file go.

This module does not decide where keys live (``shared/wire/records.py``) nor make them
(``shared.dkimkeys``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.config import Config
from shared.errors import ConfigError, SealError
from shared.secretfile import ensure_secret_file

NONCE_BYTES = 12  # SP 800-38D 8.2.2: 96-bit random nonces
KEK_BYTES = 32  # AES-256
_TAG_BYTES = 16
_AAD_LABEL = b"postline-dkim-v1"
_WEBHOOK_AAD_LABEL = b"postline-webhook-v1"


def associated_data(tenant: str, domain: str, selector: str) -> bytes:
    """What a sealed key is bound to (NUL-separated: none of the three can hold a NUL)."""
    return b"\0".join([_AAD_LABEL, tenant.encode(), domain.lower().encode(), selector.encode()])


def webhook_associated_data(tenant: str, endpoint: str) -> bytes:
    """What a sealed webhook signing secret is bound to: its tenant and endpoint id (a
    label of its own, so a sealed DKIM key can never open as a webhook secret)."""
    return b"\0".join([_WEBHOOK_AAD_LABEL, tenant.encode(), endpoint.encode()])


@dataclass(frozen=True)
class KeyRing:
    """The current KEK (seals and opens) and earlier ones (open only)."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        for kek in (self.current, *self.previous):
            if len(kek) != KEK_BYTES:
                raise ValueError(f"a KEK is {KEK_BYTES} bytes, got {len(kek)}")

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """``plaintext`` sealed under the current KEK, bound to ``aad``."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.current).encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        """The plaintext of ``sealed``; :class:`SealError` when no KEK of the ring opens it
        for ``aad`` (wrong KEK, a record moved to another tenant or domain, corruption)."""
        if len(sealed) < NONCE_BYTES + _TAG_BYTES:
            raise SealError("sealed key too short")
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        for kek in (self.current, *self.previous):
            try:
                return AESGCM(kek).decrypt(nonce, body, aad)
            except InvalidTag:
                continue  # GCM cannot tell a wrong key from a wrong AAD: try the next KEK
        raise SealError(
            "sealed key does not open: sealed with another KEK (secrets.kek_file, "
            "kek_previous_files) or for another tenant, domain or selector"
        )


def read_kek(path: Path, key: str, source: str) -> bytes:
    """A KEK file's 256-bit key (64 hex digits); a :class:`ConfigError` naming ``key``."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(source, key, f"cannot read {path}: {exc.strerror}") from exc
    try:
        kek = bytes.fromhex(text)
    except ValueError as exc:
        raise ConfigError(source, key, f"{path}: not hex digits") from exc
    if len(kek) != KEK_BYTES:
        raise ConfigError(source, key, f"{path}: {len(kek)} bytes, a KEK is {KEK_BYTES}")
    return kek


def load_keyring(config: Config) -> KeyRing:
    """The KEKs ``[secrets]`` names; a missing or bad file is a :class:`ConfigError`."""
    section = config.core.secrets
    current = read_kek(section.kek_path(config.core.runtime), "secrets.kek_file", config.source)
    previous: Sequence[bytes] = [
        read_kek(path, f"secrets.kek_previous_files[{index}]", config.source)
        for index, path in enumerate(section.kek_previous_files)
    ]
    return KeyRing(current, tuple(previous))


def load_keyring_if_present(config: Config) -> KeyRing | None:
    """:func:`load_keyring`, or ``None`` when the current KEK file does not exist (an
    installation without tenant keys needs none)."""
    if not config.core.secrets.kek_path(config.core.runtime).exists():
        return None
    return load_keyring(config)


def ensure_kek(config: Config) -> list[str]:
    """Create the KEK file when missing (``postline run`` only: production mounts it; a KEK
    made up on one pod would not open keys sealed by another). Returns banner lines."""
    path = config.core.secrets.kek_path(config.core.runtime)
    if ensure_secret_file(path, KEK_BYTES):
        return [f"secrets: wrote a new key-encryption key to {path}"]
    return []
