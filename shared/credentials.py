"""Secrets that prove who a client is: scrypt password hashes and HTTP API keys.

One implementation for the users file (``services/ingest/auth.py``) and the tenants'
credentials and API keys (``shared/tenant_admin.py``, looked up by ``shared/tenants.py``).

- Passwords are stored as ``scrypt$N$r$p$<salt b64>$<hash b64>`` (RFC 7914, a random 16-byte
  salt each); verification compares digests with ``hmac.compare_digest``. Generated passwords
  are 24 URL-safe characters (144 bits).
- API keys are ``pl_<8 hex>_<43 URL-safe chars>``: the first part (``pl_<8 hex>``) is the key's
  id, visible in lists and logs; the whole key has 256 random bits after the id, so it is
  stored as plain SHA-256 (a slow hash protects guessable secrets; this one is not guessable).

This module never stores or logs a secret; who owns a key or login is the tenant table's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

SCHEME = "scrypt"
#: scrypt cost: N=2^14, r=8, p=1 (the interactive-login parameters of RFC 7914 section 2).
N, R, P = 2**14, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32

#: Length of a generated password: 18 random bytes, 24 URL-safe characters.
PASSWORD_BYTES = 18
#: Shortest password a person may choose (the users file's rule since the first release).
MIN_PASSWORD = 12

API_KEY_PREFIX = "pl_"
_API_KEY = re.compile(r"^(pl_[0-9a-f]{8})_[A-Za-z0-9_-]{43}$")


def hash_secret(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    """A new scrypt secret string for ``password`` with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES)
    b64 = base64.b64encode
    return f"{SCHEME}${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_secret(password: bytes, secret: str) -> bool:
    """Whether ``password`` matches ``secret``; digests are compared in constant time."""
    try:
        scheme, n, r, p, salt, digest = secret.split("$")
        if scheme != SCHEME:
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password, salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def generate_password() -> str:
    """A new random password (24 URL-safe characters), for showing once."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def new_api_key() -> tuple[str, str]:
    """A new API key and its id: ``("pl_<8 hex>_<43 chars>", "pl_<8 hex>")``."""
    key_id = API_KEY_PREFIX + secrets.token_hex(4)
    return f"{key_id}_{secrets.token_urlsafe(32)}", key_id


def api_key_id(key: str) -> str | None:
    """The id part of ``key``, or ``None`` when ``key`` is not shaped like an API key."""
    match = _API_KEY.match(key)
    return match.group(1) if match else None


def hash_api_key(key: str) -> str:
    """What is stored for ``key``: its SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_matches(key: str, stored_hash: str) -> bool:
    """Whether ``key`` hashes to ``stored_hash`` (compared in constant time)."""
    return hmac.compare_digest(hash_api_key(key).encode(), stored_hash.encode())
