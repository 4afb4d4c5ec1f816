"""VERP and unsubscribe tokens: round trips, and forgeries refused."""

from __future__ import annotations

import uuid

import pytest

from shared.errors import ForgedToken
from shared.wire.tokens import (
    parse_unsubscribe_token,
    parse_verp,
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
