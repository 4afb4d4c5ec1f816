"""Standard Webhooks signing against the specification's published test vector, and the
verifier a receiver runs."""

from __future__ import annotations

import pytest

from services.webhooks.signing import (
    SignatureInvalid,
    headers,
    new_secret,
    secret_key,
    sign,
    verify,
)

# The test vector of the Standard Webhooks reference libraries (secret, id, timestamp, body
# and the signature they compute).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_sign_reproduces_the_specification_vector() -> None:
    key = secret_key(VECTOR_SECRET)
    assert sign(key, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_verify_accepts_the_vector_and_one_of_several_signatures() -> None:
    received = {
        "Webhook-Id": VECTOR_ID,
        "Webhook-Timestamp": str(VECTOR_TIMESTAMP),
        "Webhook-Signature": f"v1,bm9wZQ== {VECTOR_SIGNATURE}",
    }
    verify(VECTOR_SECRET, received, VECTOR_BODY, now=VECTOR_TIMESTAMP + 10)


@pytest.mark.parametrize(
    ("change", "now"),
    [
        ({"webhook-signature": "v1,bm9wZQ=="}, VECTOR_TIMESTAMP),
        ({"webhook-id": "msg_other"}, VECTOR_TIMESTAMP),
        ({"webhook-timestamp": str(VECTOR_TIMESTAMP + 1)}, VECTOR_TIMESTAMP),
        ({}, VECTOR_TIMESTAMP + 301),  # stale
        ({"webhook-signature": "v2," + VECTOR_SIGNATURE[3:]}, VECTOR_TIMESTAMP),
        ({"webhook-timestamp": "soon"}, VECTOR_TIMESTAMP),
    ],
)
def test_verify_refuses_what_does_not_match(change: dict[str, str], now: int) -> None:
    received = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    } | change
    with pytest.raises(SignatureInvalid):
        verify(VECTOR_SECRET, received, VECTOR_BODY, now=now)


def test_verify_refuses_a_changed_body() -> None:
    received = headers(secret_key(VECTOR_SECRET), VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    with pytest.raises(SignatureInvalid):
        verify(VECTOR_SECRET, received, VECTOR_BODY + b" ", now=VECTOR_TIMESTAMP)


def test_new_secrets_are_32_random_bytes_and_round_trip() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(secret_key(first)) == 32
    body = b'{"id":"evt_1"}'
    received = headers(secret_key(first), "evt_1", 1000, body)
    verify(first, received, body, now=1000)
    with pytest.raises(SignatureInvalid):
        verify(second, received, body, now=1000)
