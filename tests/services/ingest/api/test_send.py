"""The sending API on a running ingest (embedded bus): what a 202 puts on the bus, and the
same policy as SMTP (verified domains, suppression, limits, the bus's acknowledgement)."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy

from services.ingest.policy.base import PolicyState
from shared import tenant_admin
from shared.limits import LocalLimiter
from shared.wire.records import (
    Event,
    EventKind,
    Submission,
    Suppression,
    SuppressionReason,
    TenantState,
)
from shared.wire.topics import SUBMITTED, SUPPRESSIONS
from tests.services.ingest.api.conftest import (
    BY,
    DOMAIN,
    TENANT,
    Api,
    StartApi,
    follow,
    message,
    until,
)
from tests.services.ingest.conftest import FailingBus

#: A fixed time for the policy's clock and the limiter: nothing depends on when the test runs.
NOON = 1_780_000_000.0


def policy_of(api: Api) -> PolicyState:
    return api.ingest.stage.core.policy


async def events_of(api: Api, kind: EventKind, count: int) -> list[Event]:
    """The events of ``kind`` once there are ``count`` (the tenant's own are there too)."""
    for _ in range(50):
        found = [e for e in await api.ingest.events(0) if e.kind is kind]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} {kind} events")


async def test_a_message_is_accepted_and_on_the_bus(api: Api) -> None:
    answer = await api.post("/v1/messages", message(cc=["Bob <bob@example.net>"]))
    assert answer.status == 202, answer.body
    accepted = answer.json
    [submission] = await api.ingest.records(SUBMITTED, 1)
    assert isinstance(submission, Submission)
    assert submission.id == accepted["id"]
    assert submission.mail_from == f"app@{DOMAIN}"
    assert submission.rcpt_to == ("ann@example.org", "bob@example.net")
    assert submission.tenant == TENANT
    assert submission.client.listener == "api"
    assert submission.send_at == 0.0
    parsed = message_from_bytes(submission.data, policy=policy.default)
    assert parsed["Message-ID"] == accepted["message_id"]
    assert parsed["From"] == f"Acme <app@{DOMAIN}>"
    assert parsed["Date"]
    assert "with HTTP" in parsed["Received"]
    assert parsed.get_content().replace("\r\n", "\n") == "Hello Ann.\n"
    [event] = await events_of(api, EventKind.ACCEPTED, 1)
    assert (event.message_id, event.tenant, event.detail) == (
        accepted["id"],
        TENANT,
        f"HTTP API, key {api.key[:11]}",
    )


async def test_raw_message_with_its_envelope_and_control_headers(api: Api) -> None:
    raw = (
        f"From: app@{DOMAIN}\nTo: ann@example.org\nSubject: raw\n"
        "X-Postline-Campaign: spring\n\nLine one.\nLine two.\n"
    )
    answer = await api.post(
        "/v1/messages/raw",
        {"from": f"app@{DOMAIN}", "to": ["ann@example.org", "x@example.net"], "message": raw},
    )
    assert answer.status == 202, answer.body
    [submission] = await api.ingest.records(SUBMITTED, 1)
    assert submission.rcpt_to == ("ann@example.org", "x@example.net")
    assert submission.tags == {"campaign": "spring"}
    assert b"X-Postline" not in submission.data
    # The JSON string's bare LFs became CRLF: the message is what SMTP would have carried.
    assert b"Line one.\r\nLine two.\r\n" in submission.data
    assert b"\n" not in submission.data.replace(b"\r\n", b"")


async def test_raw_message_in_base64_keeps_its_8bit_bytes(api: Api) -> None:
    raw = f"From: app@{DOMAIN}\r\nTo: a@example.org\r\n\r\nGr\xfc\xdfe\r\n".encode("latin-1")
    answer = await api.post(
        "/v1/messages/raw",
        {
            "from": f"app@{DOMAIN}",
            "to": ["a@example.org"],
            "message_base64": base64.b64encode(raw).decode(),
        },
    )
    assert answer.status == 202, answer.body
    [submission] = await api.ingest.records(SUBMITTED, 1)
    assert submission.data.endswith(b"\r\n\r\nGr\xfc\xdfe\r\n")
    assert submission.body_8bit


async def test_a_sender_domain_not_verified_for_the_tenant_is_403(api: Api) -> None:
    answer = await api.post("/v1/messages", message(**{"from": "app@other.example"}))
    assert answer.status == 403
    assert answer.headers["Content-Type"] == "application/problem+json"
    found = answer.json
    assert (found["type"], found["check"]) == ("/v1/problems/forbidden", "sender_domain")
    assert found["reply"].startswith("550 5.7.1")
    [event] = await events_of(api, EventKind.REJECTED, 1)
    assert (event.check, event.tenant) == ("sender_domain", TENANT)
    assert await api.ingest.records(SUBMITTED, 0) == []


async def test_a_paused_tenant_is_refused_like_over_smtp(api: Api) -> None:
    await tenant_admin.set_state(api.ingest.bus, TENANT, TenantState.PAUSED, why="billing", by=BY)
    await follow(api.ingest)
    answer = await api.post("/v1/messages", message())
    assert answer.status == 403
    assert answer.json["check"] == "tenant_paused"
    assert "billing" in answer.json["detail"]


async def test_suppressed_recipients_are_named_and_the_rest_sent(api: Api) -> None:
    record = Suppression(
        address="gone@example.org", reason=SuppressionReason.HARD_BOUNCE, at=NOON, source="test"
    )
    await api.ingest.bus.publish([SUPPRESSIONS.out(record)])
    table = policy_of(api).suppressions
    await until(lambda: table.is_suppressed("gone@example.org", tenant=TENANT), "not followed")
    answer = await api.post("/v1/messages", message(to=["ann@example.org", "gone@example.org"]))
    assert answer.status == 202, answer.body
    [rejected] = answer.json["rejected"]
    assert (rejected["address"], rejected["check"]) == ("gone@example.org", "suppression")
    assert rejected["reply"].startswith("550 5.1.1")
    [submission] = await api.ingest.records(SUBMITTED, 1)
    assert submission.rcpt_to == ("ann@example.org",)
    only = await api.post("/v1/messages", message(to=["gone@example.org"]))
    assert only.status == 422
    assert only.json["type"] == "/v1/problems/no-recipient-accepted"
    assert [r["address"] for r in only.json["rejected"]] == ["gone@example.org"]
    assert len(await api.ingest.records(SUBMITTED, 1)) == 1


async def test_a_tenant_over_its_rate_gets_429_with_retry_after(api: Api) -> None:
    await tenant_admin.set_fields(
        api.ingest.bus, TENANT, limits={"per_second": 0.1, "burst": 1}, by=BY
    )
    await follow(api.ingest)
    api.ingest.stage.core.limiter = LocalLimiter(clock=lambda: NOON)
    first = await api.post("/v1/messages", message())
    assert first.status == 202, first.body
    second = await api.post("/v1/messages", message())
    assert second.status == 429
    assert second.json["check"] == "tenant_per_second"
    assert int(second.headers["Retry-After"]) == second.json["retry_after"] == 10
    assert len(await api.ingest.records(SUBMITTED, 1)) == 1


async def test_bus_trouble_is_503_with_retry_after_and_nothing_sent(start_api: StartApi) -> None:
    failing: list[FailingBus] = []

    def wrap(bus: object) -> FailingBus:
        failing.append(FailingBus(bus))  # type: ignore[arg-type]
        return failing[0]

    api = await start_api(wrap=wrap)
    failing[0].failing = True
    answer = await api.post("/v1/messages", message())
    assert answer.status == 503
    assert answer.headers["Retry-After"] == "5"
    assert answer.json["type"] == "/v1/problems/unavailable"
    failing[0].failing = False
    assert await api.ingest.records(SUBMITTED, 0) == []
    assert (await api.post("/v1/messages", message())).status == 202


async def test_send_at_is_carried_on_the_submission(api: Api) -> None:
    policy_of(api).clock = lambda: NOON
    later = datetime.fromtimestamp(NOON + 7200, timezone(timedelta(hours=2)))
    answer = await api.post("/v1/messages", message(send_at=later.isoformat()))
    assert answer.status == 202, answer.body
    assert answer.json["send_at"] == datetime.fromtimestamp(NOON + 7200, UTC).isoformat().replace(
        "+00:00", "Z"
    )
    [submission] = await api.ingest.records(SUBMITTED, 1)
    assert submission.send_at == NOON + 7200


async def test_a_batch_is_accepted_in_one_publish_each_message_on_its_own(api: Api) -> None:
    messages = [message(to=[f"r{i}@example.org"], subject=f"n{i}") for i in range(5)]
    messages[2] = message(to=["no-domain"])
    messages[4] = message(**{"from": "app@other.example"})
    answer = await api.post("/v1/messages/batch", {"messages": messages})
    assert answer.status == 202, answer.body
    found = answer.json
    assert (found["accepted"], found["refused"]) == (3, 2)
    assert [r["status"] for r in found["results"]] == [202, 202, 400, 202, 403]
    assert found["results"][2]["problem"]["errors"][0]["field"] == "$.to[0]"
    submissions = await api.ingest.records(SUBMITTED, 3)
    assert sorted(s.id for s in submissions) == sorted(
        r["id"] for r in found["results"] if r["status"] == 202
    )


async def test_a_batch_with_no_message_accepted_is_422_with_each_problem(api: Api) -> None:
    answer = await api.post("/v1/messages/batch", {"messages": [message(to=["x"])]})
    assert answer.status == 422
    assert answer.json["results"][0]["problem"]["type"] == "/v1/problems/invalid-address"


async def test_a_batch_of_500_in_one_request(api: Api) -> None:
    messages = [message(to=[f"r{i}@example.org"]) for i in range(500)]
    answer = await api.post("/v1/messages/batch", {"messages": messages})
    assert answer.status == 202, answer.body
    assert answer.json["accepted"] == 500
    assert len(await api.ingest.records(SUBMITTED, 500)) == 500


async def test_openapi_document_is_served_without_a_key(api: Api) -> None:
    answer = await api.get("/v1/openapi.json")
    assert answer.status == 200
    document = answer.json
    assert document["openapi"] == "3.1.0"
    schema = document["components"]["schemas"]["MessageRequest"]
    assert "from" in schema["properties"] and schema["required"] == ["from"]
    assert set(document["paths"]) >= {"/v1/messages", "/v1/messages/raw", "/v1/messages/batch"}
    described = await api.get("/v1/problems/rate-limited")
    assert described.status == 200 and described.json["status"] == 429
    assert (await api.get("/v1/problems/none-such")).status == 404


async def test_metrics_count_requests_by_endpoint_and_status(api: Api) -> None:
    await api.post("/v1/messages", message())
    await api.post("/v1/messages", message(), key="")
    counter = api.ingest.stage.core.metrics.api_requests
    assert counter.labels("message", "202")._value.get() == 1
    assert counter.labels("message", "401")._value.get() == 1
