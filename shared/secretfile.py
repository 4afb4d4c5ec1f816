"""Secret files: reading them at start, and creating a missing one for ``postline run``.

The signer and the bouncer share one HMAC secret (VERP and unsubscribe tokens); whichever
stage's ``prepare`` hook runs first writes it and the other finds it there. Production never
creates one: a stage started on its own refuses to start when the file is missing, because a
secret made up on one pod would not match the one its peers use.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from shared.errors import ConfigError

#: Shortest secret accepted: 128 bits, so tokens cannot be forged by guessing the key.
MIN_SECRET_BYTES = 16

#: 32 random bytes, hex-encoded: 256 bits for HMAC-SHA256 (RFC 2104 section 3: a key at
#: least as long as the hash output).
SECRET_BYTES = 32


def ensure_secret_file(path: Path, nbytes: int = SECRET_BYTES) -> bool:
    """Write a new random hex secret to ``path`` (mode 0600) unless it exists.

    Returns whether a file was created. Parent directories are created (mode 0700). The file
    is created with ``O_EXCL``, so two stages preparing at once never overwrite each other.
    """
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(nbytes) + "\n")
    return True


def read_secret(path: Path, key: str, source: str) -> bytes:
    """A secret file's content, stripped; a missing, unreadable or short file is a
    :class:`ConfigError` naming ``source`` (the config file) and ``key``."""
    try:
        value = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(source, key, f"cannot read {path}: {exc.strerror}") from exc
    if len(value) < MIN_SECRET_BYTES:
        raise ConfigError(source, key, f"{path}: secret shorter than {MIN_SECRET_BYTES} bytes")
    return value
