"""Creating a missing secret file for a development start (``postline run``).

The signer and the bouncer share one HMAC secret (VERP and unsubscribe tokens); whichever
stage's ``prepare`` hook runs first writes it and the other finds it there. Production never
calls this: a stage started on its own refuses to start when the file is missing, because a
secret made up on one pod would not match the one its peers use.

This module only writes files; reading and checking a secret stays with each stage.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

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
