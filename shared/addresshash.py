"""The keyed hash that stands in for an erased address (``postline gdpr erase``).

An erased address must stay suppressed (mailing someone who unsubscribed, then asked to be
forgotten, is the worst outcome of all) without being kept. Its suppression entries are
rewritten with ``address_hash`` = HMAC-SHA256(key, lower-cased address) instead of the
address, under the key ``hmac-sha256:<hex>`` in place of the address
(``shared.wire.topics.suppression_key``); ingest and the signer hash each recipient they
check and look that up too (``shared.suppressions``). The erasure record in the store keeps
the same hash.

Why keyed: a plain SHA-256 of an address is reversed by hashing a list of likely addresses;
without the key nobody can test a guess. Why a key of its own (``[secrets]
gdpr_hash_key_file``) and not the VERP/unsubscribe token secret: that secret is meant to be
rotatable (old links stop verifying, nothing worse), this key must never change (entries
hashed with an old key no longer match, and the erased addresses would be mailed again), and
ingest, which checks suppressions, does not hold the token secret.

A hashed form never contains ``@``, so it can never equal a real address's key.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from shared.config import Config
from shared.errors import ConfigError
from shared.secretfile import SECRET_BYTES, ensure_secret_file, read_secret
from shared.wire.topics import HASHED_ADDRESS_PREFIX as HASH_PREFIX

#: The config key naming the file, for errors.
KEY_SETTING = "secrets.gdpr_hash_key_file"


def address_hash(key: bytes, address: str) -> str:
    """HMAC-SHA256 of the lower-cased, trimmed ``address`` under ``key``, as hex."""
    normal = address.strip().lower().encode("utf-8")
    return hmac.new(key, normal, hashlib.sha256).hexdigest()


def hashed_form(digest: str) -> str:
    """What stands where the address stood, for an ``address_hash`` value."""
    return HASH_PREFIX + digest


def is_hashed(text: str) -> bool:
    """Whether a suppression key or address field holds a hashed form."""
    return HASH_PREFIX in text


def key_path(config: Config) -> Path:
    """The key file ``[secrets]`` names (its default resolved)."""
    return config.core.secrets.gdpr_hash_key_path(config.core.runtime)


def load_hash_key(config: Config) -> bytes:
    """The key; a missing, unreadable or short file is a :class:`ConfigError`."""
    return read_secret(key_path(config), KEY_SETTING, config.source)


def load_hash_key_if_present(config: Config) -> bytes | None:
    """:func:`load_hash_key`, or ``None`` when the file does not exist (nothing was ever
    erased with a key this process could know of)."""
    if not key_path(config).exists():
        return None
    return load_hash_key(config)


def ensure_hash_key(config: Config) -> list[str]:
    """Create the key file when missing (``postline run``, and ``postline gdpr erase`` on
    the embedded bus: one host, so every reader sees the same file). Production mounts it:
    a key made up on one pod would not match another's. Returns banner lines."""
    path = key_path(config)
    if ensure_secret_file(path, SECRET_BYTES):
        return [f"secrets: wrote a new keyed-hash key for erased addresses to {path}"]
    return []


def missing_key_error(config: Config) -> ConfigError:
    """The error for a suppression table with hashed entries and no key to match them."""
    return ConfigError(
        config.source,
        KEY_SETTING,
        f"{key_path(config)} is missing, but postline.suppressions holds entries of erased "
        "addresses, which only this key can match; mount the key `postline gdpr erase` used",
    )
