"""Idempotency-Key on a running ingest: a retry gets the first answer and sends nothing more,
concurrent duplicates send once, and a key reused for another body is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from shared.bus.base import Bus
from shared.wire.topics import SUBMITTED, OutRecord
from tests.services.ingest.api.conftest import Api, StartApi, add_tenant, message
from tests.services.ingest.conftest import FailingBus


async def test_a_retry_with_the_same_key_gets_the_first_answer_and_sends_once(api: Api) -> None:
    key = {"Idempotency-Key": "order-1042-receipt"}
    first = await api.post("/v1/messages", message(), headers=key)
    assert first.status == 202, first.body
    again = await api.post("/v1/messages", message(), headers=key)
    assert again.status == 202
    assert again.body == first.body
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    [submission] = await api.ingest.records(SUBMITTED, 1)
    assert submission.id == first.json["id"]
    counter = api.ingest.stage.core.metrics.api_idempotency
    assert counter.labels("replayed")._value.get() == 1


async def test_the_same_key_for_another_body_is_422(api: Api) -> None:
    key = {"Idempotency-Key": "k1"}
    assert (await api.post("/v1/messages", message(), headers=key)).status == 202
    other = await api.post("/v1/messages", message(subject="Other"), headers=key)
    assert other.status == 422
    assert other.json["type"] == "/v1/problems/idempotency-key-reused"
    elsewhere = await api.post("/v1/messages/batch", {"messages": [message()]}, headers=key)
    assert elsewhere.status == 422
    assert len(await api.ingest.records(SUBMITTED, 1)) == 1


async def test_keys_are_per_tenant(api: Api) -> None:
    other_key = await add_tenant(api.ingest, "globex", "globex.test")
    key = {"Idempotency-Key": "shared-key"}
    assert (await api.post("/v1/messages", message(), headers=key)).status == 202
    theirs = message(**{"from": "app@globex.test"})
    answer = await api.post("/v1/messages", theirs, headers=key, key=other_key)
    assert answer.status == 202
    assert "Idempotent-Replayed" not in answer.headers
    assert len(await api.ingest.records(SUBMITTED, 2)) == 2


async def test_a_refused_request_releases_its_key(api: Api) -> None:
    key = {"Idempotency-Key": "retry-after-fix"}
    body = message(**{"from": "app@other.example"})
    assert (await api.post("/v1/messages", body, headers=key)).status == 403
    again = await api.post("/v1/messages", body, headers=key)
    assert again.status == 403
    assert "Idempotent-Replayed" not in again.headers
    assert await api.ingest.records(SUBMITTED, 0) == []


class SlowBus(FailingBus):
    """Publishes only once ``go`` is set: the first request is in flight meanwhile."""

    def __init__(self, inner: Bus) -> None:
        super().__init__(inner)
        self.go = asyncio.Event()
        self.waiting = asyncio.Event()

    async def publish(self, records: Sequence[OutRecord], timeout: float | None = None) -> None:
        if any(r.topic == SUBMITTED.name for r in records):
            self.waiting.set()
            await self.go.wait()
        await super().publish(records, timeout)


async def test_concurrent_duplicates_send_once(start_api: StartApi) -> None:
    buses: list[SlowBus] = []

    def wrap(bus: Bus) -> SlowBus:
        buses.append(SlowBus(bus))
        return buses[0]

    api = await start_api(wrap=wrap)
    key = {"Idempotency-Key": "double-click"}
    first = asyncio.create_task(api.post("/v1/messages", message(), headers=key))
    await asyncio.wait_for(buses[0].waiting.wait(), 10)
    duplicates = await asyncio.gather(
        *(api.post("/v1/messages", message(), headers=key) for _ in range(4))
    )
    assert [d.status for d in duplicates] == [409] * 4
    assert all(d.headers["Retry-After"] == "1" for d in duplicates)
    assert duplicates[0].json["type"] == "/v1/problems/idempotency-in-progress"
    buses[0].go.set()
    assert (await first).status == 202
    replay = await api.post("/v1/messages", message(), headers=key)
    assert replay.status == 202 and replay.body == (await first).body
    assert len(await api.ingest.records(SUBMITTED, 1)) == 1


async def test_a_503_is_not_kept_and_the_retry_sends(start_api: StartApi) -> None:
    buses: list[FailingBus] = []

    def wrap(bus: Bus) -> FailingBus:
        buses.append(FailingBus(bus))
        return buses[0]

    api = await start_api(wrap=wrap)
    key = {"Idempotency-Key": "bus-down"}
    buses[0].failing = True
    assert (await api.post("/v1/messages", message(), headers=key)).status == 503
    buses[0].failing = False
    retry = await api.post("/v1/messages", message(), headers=key)
    assert retry.status == 202
    assert "Idempotent-Replayed" not in retry.headers
    assert len(await api.ingest.records(SUBMITTED, 1)) == 1
