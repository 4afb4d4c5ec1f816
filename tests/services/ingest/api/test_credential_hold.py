"""A held API key over the sending API (embedded bus): refused like a held SMTP login, as a
temporary failure with the reason, its rejected event, and sent again once released."""

from __future__ import annotations

import asyncio

from shared import tenant_admin
from shared.cli.credential import hold, release
from shared.wire.records import EventKind
from shared.wire.topics import SUBMITTED
from tests.services.ingest.api.conftest import TENANT, Api, message, until


async def test_a_held_api_key_gets_503_with_the_reason_until_released(api: Api) -> None:
    bus = api.ingest.bus
    [key] = (await tenant_admin.get(bus, TENANT)).api_keys
    holds = api.ingest.stage.holds
    await hold(bus, key.id, "customer reported a leak", "cli:test")
    await until(lambda: holds.get(key.id) is not None, "ingest did not follow the hold")
    answer = await api.post("/v1/messages", message())
    assert answer.status == 503, answer.body
    assert answer.json["check"] == "credential_held"
    assert answer.json["reply"].startswith(
        "451 4.7.1 credential held for unusual sending activity; contact your provider (ref "
    )
    assert "leak" not in answer.body.decode()  # the operator's reason stays with the operator
    assert answer.headers["Retry-After"] == "600"  # a release takes a person
    for _ in range(50):
        events = await api.ingest.events(0)
        if any(e.kind is EventKind.REJECTED and e.check == "credential_held" for e in events):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("no rejected event for the held key")
    [rejected] = [e for e in events if e.kind is EventKind.REJECTED]
    assert rejected.credential == key.id and rejected.message_id in answer.json["reply"]

    await release(bus, key.id, "", "cli:test")
    await until(lambda: holds.get(key.id) is None, "ingest did not follow the release")
    answer = await api.post("/v1/messages", message())
    assert answer.status == 202, answer.body
    assert len(await api.ingest.records(SUBMITTED, 1)) == 1
