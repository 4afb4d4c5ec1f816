"""Standard Webhooks signatures (https://www.standardwebhooks.com, "Signature scheme").

A secret is ``whsec_`` + base64 of the key bytes (we make 32 random bytes). A message is
signed over ``f"{webhook-id}.{webhook-timestamp}.{body}"`` with HMAC-SHA256 under the key;
``webhook-signature`` is ``v1,`` + base64 of the MAC (several space-separated signatures
may be sent during a secret rotation; a receiver accepts any one that matches). The
timestamp is integer seconds since the epoch; receivers refuse ones too far from now
(5 minutes in the reference libraries), which bounds replays of a captured request.

Owns signing and verifying (the verifier is what our tests and ``docs/webhooks.md`` show a
receiver doing); not where secrets are kept (sealed on the tenant record: ``endpoints.py``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
#: The reference libraries' tolerance between the timestamp and the receiver's clock.
TOLERANCE = 300


class SignatureInvalid(ValueError):
    """A webhook's headers do not verify (missing, stale, or no signature matches)."""


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The key bytes of ``secret`` (with or without the ``whsec_`` prefix)."""
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret is whsec_ followed by base64") from exc


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one message: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one request."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, msg_id, timestamp, body),
    }


def verify(
    secret: str, received: Mapping[str, str], body: bytes, now: float, tolerance: int = TOLERANCE
) -> None:
    """Check a received webhook as a receiver does; raises :class:`SignatureInvalid`.

    ``received`` maps header names (any case) to values.
    """
    lowered = {name.lower(): value for name, value in received.items()}
    msg_id = lowered.get("webhook-id", "")
    stamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not msg_id or not stamp or not signatures:
        raise SignatureInvalid("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise SignatureInvalid(f"webhook-timestamp is not an integer: {stamp!r}") from exc
    if abs(now - timestamp) > tolerance:
        raise SignatureInvalid("webhook-timestamp too far from now")
    expected = sign(secret_key(secret), msg_id, timestamp, body).split(",", 1)[1]
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return
    raise SignatureInvalid("no signature matches")
