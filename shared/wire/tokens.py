"""HMAC tokens that let the bouncer trust what comes back: VERP return paths and unsubscribes.

The signer writes them, the bouncer reads them; the secret is shared by both (a Kubernetes
Secret). Anyone can send a bounce or hit an unsubscribe URL, so nothing is acted on unless
its token verifies (forged bounces must never suppress a real customer's recipients).

VERP return path (one per recipient)::

    <local>+<token>-<rcpt local>=<rcpt domain>@<bounce domain>

``token`` is base32 (lower case, no padding) of the 16-byte message id and an 8-byte HMAC
over the message id and the lower-cased recipient. The recipient stays readable, like classic
VERP, so an operator can read a bounce address. Some remote MTAs lower-case the local part;
base32 and the lower-cased HMAC input make that harmless.

Unsubscribe token: base64url (no padding) of a msgpack array (recipient, scope, message id)
plus a 10-byte HMAC; it travels in an URL path and in a mailto local part.

Tracking token (open pixel and rewritten links): base64url (no padding) of a 12-byte HMAC
followed by a msgpack array (version, message id as 16 bytes, recipient, tenant, sent at in
whole seconds, link number, original URL); the pixel's token has link 0 and no URL. The URL
travels inside the token, so the endpoint needs no database and redirects only to a URL that
was in the message (an altered URL fails the HMAC: no open redirect).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field

import msgspec

from shared.errors import ForgedToken

_VERP_MAC_BYTES = 8
_UNSUB_MAC_BYTES = 10
_TRACK_MAC_BYTES = 12
_TRACK_VERSION = 1
_MSGID_BYTES = 16
_VERP_TOKEN_CHARS = 39  # base32 of 24 bytes without padding


@dataclass(frozen=True)
class VerpToken:
    """What a valid VERP return path tells: which message, which recipient."""

    message_id: str
    recipient: str


@dataclass(frozen=True)
class TrackingToken:
    """What a valid tracking token tells: whose message, which link (0 = the open pixel)."""

    message_id: str
    recipient: str
    tenant: str
    sent_at: int  # when the signer rewrote the message (Unix seconds)
    link: int = 0
    url: str = ""


@dataclass(frozen=True)
class UnsubscribeToken:
    """What a valid unsubscribe token tells; ``scope`` is the sender domain ("" = all)."""

    recipient: str
    scope: str
    message_id: str
    #: The token's HMAC (hex) as it arrived: the unsubscribe's proof (``unsubscribe_proof``).
    #: Not compared: it follows from the three fields and the secret.
    mac: str = field(default="", compare=False)


def _mac(secret: bytes, purpose: bytes, *parts: bytes, size: int) -> bytes:
    digest = hmac.new(secret, purpose + b"\0" + b"\0".join(parts), hashlib.sha256).digest()
    return digest[:size]


def verp_address(
    local: str, bounce_domain: str, message_id: str, recipient: str, secret: bytes
) -> str:
    """The return path for one recipient of one message."""
    try:
        msgid = bytes.fromhex(message_id)
    except ValueError as exc:
        raise ValueError(f"message id must be 32 hex digits, got {message_id!r}") from exc
    if len(msgid) != _MSGID_BYTES:
        raise ValueError(f"message id must be 32 hex digits, got {message_id!r}")
    mac = _mac(secret, b"verp", msgid, recipient.lower().encode(), size=_VERP_MAC_BYTES)
    token = base64.b32encode(msgid + mac).decode().rstrip("=").lower()
    rcpt_local, _, rcpt_domain = recipient.rpartition("@")
    return f"{local}+{token}-{rcpt_local}={rcpt_domain}@{bounce_domain}"


def parse_verp(address: str, secret: bytes) -> VerpToken:
    """Verify and decode a VERP return path; raises :class:`ForgedToken`."""
    local_part, at, _ = address.strip("<>").rpartition("@")
    plus = local_part.find("+")
    if not at or plus < 0:
        raise ForgedToken(f"not a VERP address: {address!r}")
    rest = local_part[plus + 1 :]
    token, dash, encoded_rcpt = (
        rest[:_VERP_TOKEN_CHARS],
        rest[_VERP_TOKEN_CHARS : _VERP_TOKEN_CHARS + 1],
        rest[_VERP_TOKEN_CHARS + 1 :],
    )
    rcpt_local, eq, rcpt_domain = encoded_rcpt.rpartition("=")
    if dash != "-" or not eq or not rcpt_domain:
        raise ForgedToken(f"malformed VERP address: {address!r}")
    try:
        raw = base64.b32decode(token.upper() + "=")
    except (binascii.Error, ValueError) as exc:
        raise ForgedToken(f"malformed VERP token in {address!r}") from exc
    msgid, mac = raw[:_MSGID_BYTES], raw[_MSGID_BYTES:]
    recipient = f"{rcpt_local}@{rcpt_domain}"
    expected = _mac(secret, b"verp", msgid, recipient.lower().encode(), size=_VERP_MAC_BYTES)
    if not hmac.compare_digest(mac, expected):
        raise ForgedToken(f"VERP HMAC does not verify: {address!r}")
    return VerpToken(message_id=msgid.hex(), recipient=recipient)


def unsubscribe_token(secret: bytes, recipient: str, scope: str, message_id: str) -> str:
    """A token for List-Unsubscribe URLs and mailto addresses."""
    payload = msgspec.msgpack.encode([recipient, scope, message_id])
    mac = _mac(secret, b"unsubscribe", payload, size=_UNSUB_MAC_BYTES)
    return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")


def unsubscribe_proof(secret: bytes, recipient: str, scope: str, message_id: str) -> str:
    """The HMAC (hex) of the unsubscribe token for these values: what a suppression keeps
    as proof (``Suppression.proof``). It holds no address; given the address a person
    claims, recomputing it here and comparing shows the unsubscribe came through a link
    Postline sent to that address (only the token secret's holder can make one)."""
    payload = msgspec.msgpack.encode([recipient, scope, message_id])
    return _mac(secret, b"unsubscribe", payload, size=_UNSUB_MAC_BYTES).hex()


def parse_unsubscribe_token(secret: bytes, token: str) -> UnsubscribeToken:
    """Verify and decode an unsubscribe token; raises :class:`ForgedToken`."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ForgedToken("malformed unsubscribe token") from exc
    mac, payload = raw[:_UNSUB_MAC_BYTES], raw[_UNSUB_MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(secret, b"unsubscribe", payload, size=_UNSUB_MAC_BYTES)):
        raise ForgedToken("unsubscribe token HMAC does not verify")
    try:
        recipient, scope, message_id = msgspec.msgpack.decode(payload, type=tuple[str, str, str])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ForgedToken("malformed unsubscribe token payload") from exc
    return UnsubscribeToken(recipient=recipient, scope=scope, message_id=message_id, mac=mac.hex())


def tracking_token(secret: bytes, token: TrackingToken) -> str:
    """The URL-safe token of an open pixel (``link`` 0) or a rewritten link."""
    try:
        msgid = bytes.fromhex(token.message_id)
    except ValueError as exc:
        raise ValueError(f"message id must be 32 hex digits, got {token.message_id!r}") from exc
    if len(msgid) != _MSGID_BYTES:
        raise ValueError(f"message id must be 32 hex digits, got {token.message_id!r}")
    payload = msgspec.msgpack.encode(
        [
            _TRACK_VERSION,
            msgid,
            token.recipient,
            token.tenant,
            token.sent_at,
            token.link,
            token.url,
        ]
    )
    mac = _mac(secret, b"track", payload, size=_TRACK_MAC_BYTES)
    return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")


def parse_tracking_token(secret: bytes, text: str) -> TrackingToken:
    """Verify and decode a tracking token; raises :class:`ForgedToken`."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ForgedToken("malformed tracking token") from exc
    mac, payload = raw[:_TRACK_MAC_BYTES], raw[_TRACK_MAC_BYTES:]
    expected = _mac(secret, b"track", payload, size=_TRACK_MAC_BYTES)
    if len(mac) != _TRACK_MAC_BYTES or not hmac.compare_digest(mac, expected):
        raise ForgedToken("tracking token HMAC does not verify")
    try:
        version, msgid, recipient, tenant, sent_at, link, url = msgspec.msgpack.decode(
            payload, type=tuple[int, bytes, str, str, int, int, str]
        )
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ForgedToken("malformed tracking token payload") from exc
    if version != _TRACK_VERSION or len(msgid) != _MSGID_BYTES:
        raise ForgedToken(f"unknown tracking token version {version}")
    return TrackingToken(
        message_id=msgid.hex(),
        recipient=recipient,
        tenant=tenant,
        sent_at=sent_at,
        link=link,
        url=url,
    )
