"""VERP, unsubscribe and tracking tokens: round trips, and forgeries refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

import msgspec
import pytest

from shared.errors import ForgedToken
from shared.wire.tokens import (
    TrackingToken,
    parse_tracking_token,
    parse_unsubscribe_token,
    parse_verp,
    tracking_token,
    unsubscribe_token,
    verp_address,
)

SECRET = b"test-secret"


@pytest.mark.parametrize(
    "recipient",
    [
        "user@example.org",
        "Jo.hn+tag=x@Example.ORG",
        "dash-ed-name@sub.example.co.uk",
        "用户@例子.测试",
    ],
)
def test_verp_round_trip(recipient: str) -> None:
    message_id = uuid.uuid4().hex
    address = verp_address("b", "bounce.example.com", message_id, recipient, SECRET)
    assert address.endswith("@bounce.example.com")
    token = parse_verp(address, SECRET)
    assert token.message_id == message_id
    assert token.recipient == recipient


def test_verp_survives_a_remote_mta_lower_casing_it() -> None:
    message_id = uuid.uuid4().hex
    address = verp_address("b", "bounce.example.com", message_id, "Mixed@Example.org", SECRET)
    token = parse_verp(f"<{address.lower()}>", SECRET)
    assert token.recipient == "mixed@example.org"
    assert token.message_id == message_id


@pytest.mark.parametrize(
    "mangle",
    [
        lambda a: a.replace("victim", "other"),  # recipient swapped
        lambda a: a.replace("+", "+a", 1)[:-1],  # token shifted
        lambda a: "b+" + "a" * 39 + "-victim=example.org@bounce.example.com",  # made-up token
        lambda a: "postmaster@bounce.example.com",  # not VERP at all
    ],
)
def test_forged_verp_is_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    address = verp_address(
        "b", "bounce.example.com", uuid.uuid4().hex, "victim@example.org", SECRET
    )
    with pytest.raises(ForgedToken):
        parse_verp(mangle(address), SECRET)


def test_verp_with_another_secret_is_refused() -> None:
    address = verp_address("b", "bounce.example.com", uuid.uuid4().hex, "a@example.org", SECRET)
    with pytest.raises(ForgedToken):
        parse_verp(address, b"another-secret")


def test_unsubscribe_round_trip_and_forgery() -> None:
    message_id = uuid.uuid4().hex
    token = unsubscribe_token(SECRET, "reader@example.org", "shop.example", message_id)
    parsed = parse_unsubscribe_token(SECRET, token)
    assert (parsed.recipient, parsed.scope, parsed.message_id) == (
        "reader@example.org",
        "shop.example",
        message_id,
    )
    with pytest.raises(ForgedToken):
        parse_unsubscribe_token(b"wrong", token)
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(ForgedToken):
        parse_unsubscribe_token(SECRET, tampered)
    with pytest.raises(ForgedToken):
        parse_unsubscribe_token(SECRET, "!!not-base64!!")


@pytest.mark.parametrize("message_id", ["ab" * 15, "ab" * 17, "not hex at all"])
def test_verp_address_refuses_a_message_id_that_is_not_16_bytes(message_id: str) -> None:
    with pytest.raises(ValueError, match="32 hex digits"):
        verp_address("b", "bounce.example.com", message_id, "bob@example.org", SECRET)


@pytest.mark.parametrize(
    "address", ["bounces@bounce.example.com", "no-at-sign-here", "b+token-bob=example.org"]
)
def test_not_a_verp_address(address: str) -> None:
    with pytest.raises(ForgedToken, match="not a VERP address"):
        parse_verp(address, SECRET)


def test_verp_with_an_empty_local_part_before_the_token_verifies() -> None:
    # The token follows the first "+": what precedes it (the bounce local part) is not
    # signed, so "+token-..." is as valid as "b+token-...".
    message_id = uuid.uuid4().hex
    address = verp_address("", "bounce.example.com", message_id, "bob@example.org", SECRET)
    assert address.startswith("+")
    assert parse_verp(address, SECRET).message_id == message_id


@pytest.mark.parametrize(
    "mangle",
    [
        lambda a: a.replace("-bob=", "_bob=", 1),  # the dash after the token
        lambda a: a.replace("=example.org@", "@", 1),  # no "=" before the recipient domain
        lambda a: a.replace("=example.org@", "=@", 1),  # an empty recipient domain
    ],
)
def test_malformed_verp_is_refused_as_malformed(mangle) -> None:  # type: ignore[no-untyped-def]
    address = verp_address("b", "bounce.example.com", uuid.uuid4().hex, "bob@example.org", SECRET)
    with pytest.raises(ForgedToken, match="malformed VERP address"):
        parse_verp(mangle(address), SECRET)


def _token(**fields: object) -> TrackingToken:
    values: dict[str, object] = {
        "message_id": uuid.uuid4().hex,
        "recipient": "bob@example.org",
        "tenant": "acme",
        "sent_at": 1_700_000_000,
    }
    return TrackingToken(**(values | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "token",
    [
        _token(),
        _token(link=7, url="https://example.com/a?b=1&c=%20#frag"),
        _token(recipient="Jöran@Exämple.de", url="https://exämple.de/ö", link=1),
    ],
)
def test_tracking_token_round_trip(token: TrackingToken) -> None:
    text = tracking_token(SECRET, token)
    assert "=" not in text and "/" not in text and "+" not in text  # one URL path segment
    assert parse_tracking_token(SECRET, text) == token


@pytest.mark.parametrize("message_id", ["ab" * 15, "zz" * 16])
def test_tracking_token_refuses_a_message_id_that_is_not_16_bytes(message_id: str) -> None:
    with pytest.raises(ValueError, match="32 hex digits"):
        tracking_token(SECRET, _token(message_id=message_id))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the URL's last byte altered
        lambda t: t[:10],  # truncated
        lambda t: "",
        lambda t: t + "!",  # not base64url
        lambda t: "A" + t[1:] if t[0] != "A" else "B" + t[1:],  # the MAC altered
    ],
)
def test_altered_tracking_token_is_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    text = tracking_token(SECRET, _token(link=1, url="https://example.com/offer"))
    with pytest.raises(ForgedToken):
        parse_tracking_token(SECRET, mangle(text))


def _signed(payload: list[object]) -> str:
    """A token made by hand after the documented layout (12-byte MAC + msgpack array)."""
    body = msgspec.msgpack.encode(payload)
    mac = hmac.new(SECRET, b"track\0" + body, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(mac + body).decode().rstrip("=")


def test_hand_made_tracking_token_of_the_documented_layout_verifies() -> None:
    text = _signed([1, b"\x01" * 16, "bob@example.org", "acme", 5, 2, "https://e.com/"])
    assert parse_tracking_token(SECRET, text) == TrackingToken(
        "01" * 16, "bob@example.org", "acme", 5, 2, "https://e.com/"
    )


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ([2, b"\x01" * 16, "bob@example.org", "acme", 5, 2, "https://e.com/"], "version"),
        ([1, b"\x01" * 15, "bob@example.org", "acme", 5, 2, "https://e.com/"], "version"),
        ([1, b"\x01" * 16, "bob@example.org", "acme", 5, 2], "payload"),
        ([1, "not bytes", "bob@example.org", "acme", 5, 2, "https://e.com/"], "payload"),
    ],
)
def test_tracking_token_of_an_unknown_layout_is_refused_though_signed(
    payload: list[object], match: str
) -> None:
    with pytest.raises(ForgedToken, match=match):
        parse_tracking_token(SECRET, _signed(payload))


@pytest.mark.parametrize("length", range(1, 21))
def test_unsubscribe_and_tracking_tokens_of_every_length_round_trip(length: int) -> None:
    # base64 without padding: the parser restores it, whatever the length's remainder.
    recipient = "a" * length + "@example.org"
    message_id = uuid.uuid4().hex
    unsub = parse_unsubscribe_token(SECRET, unsubscribe_token(SECRET, recipient, "", message_id))
    assert unsub.recipient == recipient
    token = _token(recipient=recipient)
    assert parse_tracking_token(SECRET, tracking_token(SECRET, token)) == token
