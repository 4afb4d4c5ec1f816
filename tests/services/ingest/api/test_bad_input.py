"""Bad input to the sending API: each a clear RFC 9457 problem, and nothing on the bus."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared import tenant_access
from shared.wire.topics import SUBMITTED
from tests.services.ingest.api.conftest import BY, TENANT, Api, follow, message

#: A fixed time for the policy's clock: send-at bounds do not depend on when the test runs.
NOON = 1_780_000_000.0
RFC822 = "message/rfc822"


def when(offset: float) -> str:
    return datetime.fromtimestamp(NOON + offset, UTC).isoformat()


async def nothing_sent(api: Api) -> None:
    assert await api.ingest.records(SUBMITTED, 0) == []


async def test_malformed_json_is_400(api: Api) -> None:
    answer = await api.post("/v1/messages", raw=b'{"from": "a@acme.test", "to": [')
    assert answer.status == 400
    assert answer.headers["Content-Type"] == "application/problem+json"
    found = answer.json
    assert found["type"] == "/v1/problems/malformed-json"
    assert found["title"] == "Request body is not valid JSON" and found["status"] == 400
    await nothing_sent(api)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (message(colour="blue"), "$", "unknown field `colour`"),
        (
            message(attachments=[{"filename": "a", "content": "eA==", "size": 1}]),
            "$.attachments[0]",
            "unknown field `size`",
        ),
        (message(to="ann@example.org"), "$.to", "Expected `array`"),
        ({"to": ["ann@example.org"], "text": "x"}, "$", "missing required field `from`"),
        (
            message(attachments=[{"filename": "a", "content": "not base64!"}]),
            "$.attachments[0].content",
            "base64",
        ),
    ],
)
async def test_a_body_that_does_not_fit_the_schema_is_422_naming_the_field(
    api: Api, body: dict[str, object], field: str, words: str
) -> None:
    answer = await api.post("/v1/messages", body)
    assert answer.status == 422, answer.body
    found = answer.json
    assert found["type"] == "/v1/problems/invalid-request"
    [error] = found["errors"]
    assert error["field"] == field
    assert words in error["detail"]
    await nothing_sent(api)


async def test_a_30_mb_request_is_413(api: Api) -> None:
    big = b'{"from": "app@acme.test", "to": ["a@example.org"], "text": "' + b"x" * (30 * 10**6)
    answer = await api.post("/v1/messages", raw=big + b'"}')
    assert answer.status == 413
    assert answer.json["type"] == "/v1/problems/too-large"
    await nothing_sent(api)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (message(to=["ann"]), "$.to[0]"),
        (message(cc=["ok@example.org", "Bob <bob>"]), "$.cc[1]"),
        (message(**{"from": "app"}), "$.from"),
        (message(bcc=["a b@example.org"]), "$.bcc[0]"),
    ],
)
async def test_an_address_without_a_domain_or_malformed_is_400(
    api: Api, body: dict[str, object], field: str
) -> None:
    answer = await api.post("/v1/messages", body)
    assert answer.status == 400, answer.body
    found = answer.json
    assert found["type"] == "/v1/problems/invalid-address"
    assert found["errors"][0]["field"] == field
    await nothing_sent(api)


async def test_no_key_an_unknown_key_and_a_revoked_key_are_401(api: Api) -> None:
    missing = await api.post("/v1/messages", message(), key="")
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="postline"'
    unknown = await api.post("/v1/messages", message(), key="pl_00000000_" + "x" * 43)
    assert unknown.status == 401
    assert 'error="invalid_token"' in unknown.headers["WWW-Authenticate"]
    key_id = api.key[:11]
    await tenant_access.revoke_api_key(api.ingest.bus, TENANT, key_id, by=BY)
    await follow(api.ingest)
    revoked = await api.post("/v1/messages", message())
    assert revoked.status == 401
    assert revoked.json["type"] == "/v1/problems/unauthorized"
    await nothing_sent(api)


@pytest.mark.parametrize(
    ("send_at", "words"),
    [
        (when(-3600), "in the past"),
        (when(72 * 3600 + 60), "more than 72h ahead"),
        (datetime.fromtimestamp(NOON + 60, UTC).replace(tzinfo=None).isoformat(), "offset"),
    ],
)
async def test_a_send_at_in_the_past_too_far_or_without_offset_is_422(
    api: Api, send_at: str, words: str
) -> None:
    api.ingest.stage.core.policy.clock = lambda: NOON
    answer = await api.post("/v1/messages", message(send_at=send_at))
    assert answer.status == 422
    found = answer.json
    assert found["type"] == "/v1/problems/invalid-send-at"
    assert words in found["detail"]
    assert found["errors"][0]["field"] == "$.send_at"
    await nothing_sent(api)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (message(text=None), "no body"),
        (message(to=[]), "no recipient"),
        (message(subject="Hi\r\nBcc: evil@example.org"), "control characters"),
        (message(headers={"Bcc": "evil@example.org"}), "set by the request"),
        (message(headers={"Bad Name": "x"}), "header name"),
        (message(headers={"X-Ok": "a\nb"}), "control characters"),
        (message(tags={"a b": "x"}), "tag name"),
        (message(tracking={"opens": True}), "tracking is not available"),
        (
            message(
                attachments=[{"filename": "m", "content": "eA==", "content_type": "message/rfc822"}]
            ),
            "cannot be attached",
        ),
    ],
)
async def test_a_message_that_cannot_be_sent_as_given_is_422(
    api: Api, body: dict[str, object], words: str
) -> None:
    answer = await api.post("/v1/messages", body)
    assert answer.status == 422, answer.body
    assert answer.json["type"] == "/v1/problems/invalid-message"
    assert words in answer.json["detail"]
    await nothing_sent(api)


async def test_a_raw_message_needs_exactly_one_form(api: Api) -> None:
    body = {"from": "app@acme.test", "to": ["a@example.org"], "message": "x", "message_base64": ""}
    answer = await api.post("/v1/messages/raw", body)
    assert answer.status == 422
    assert "one of message and message_base64" in answer.json["detail"]
    await nothing_sent(api)


async def test_a_body_that_is_not_json_is_415_and_a_bad_idempotency_key_400(api: Api) -> None:
    form = await api.post("/v1/messages", raw=b"a=b", headers={"Content-Type": "text/plain"})
    assert form.status == 415
    key = await api.post("/v1/messages", message(), headers={"Idempotency-Key": "\u00e9t\u00e9"})
    assert key.status == 400
    assert key.json["type"] == "/v1/problems/invalid-idempotency-key"
    await nothing_sent(api)


async def test_a_batch_over_the_limit_is_422_and_nothing_is_sent(api: Api) -> None:
    answer = await api.post("/v1/messages/batch", {"messages": [message()] * 501})
    assert answer.status == 422
    assert answer.json["errors"][0]["field"] == "$.messages"
    await nothing_sent(api)
