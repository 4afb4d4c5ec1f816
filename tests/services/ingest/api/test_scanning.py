"""The sending API through the content scanner (a real rspamd): the same verdicts as SMTP."""

from __future__ import annotations

from shared import tenant_admin
from shared.wire.records import EventKind
from shared.wire.topics import SUBMITTED
from tests.services.ingest.api.conftest import BY, TENANT, StartApi, follow, message
from tests.services.ingest.test_scanning import GTUBE, scanning


async def test_the_sending_api_gets_the_same_verdicts(start_api: StartApi, rspamd_url: str) -> None:
    api = await start_api(scanning=scanning(rspamd_url))
    refused = await api.post("/v1/messages", message(text=GTUBE.decode() + "\n"))
    assert refused.status == 403, refused.body
    assert refused.json["check"] == "rspamd"
    assert refused.json["reply"].startswith("550 5.7.1 Message refused by content policy")
    sent = await api.post("/v1/messages", message())
    assert sent.status == 202, sent.body
    [submission] = await api.ingest.records(SUBMITTED, 1)
    assert submission.tenant == TENANT


async def test_a_tenants_own_mode_overrides_the_global_one(
    start_api: StartApi, rspamd_url: str
) -> None:
    api = await start_api(scanning=scanning(rspamd_url))  # globally: enforce
    await tenant_admin.set_fields(api.ingest.bus, TENANT, settings={"scanning": "tag"}, by=BY)
    await follow(api.ingest)
    tagged = await api.post("/v1/messages", message(text=GTUBE.decode() + "\n"))
    assert tagged.status == 202, tagged.body  # tag: marked, never refused
    [submission] = await api.ingest.records(SUBMITTED, 1)
    assert submission.data.startswith(b"X-Spam: Yes\r\n")

    await tenant_admin.set_fields(api.ingest.bus, TENANT, settings={"scanning": "off"}, by=BY)
    await follow(api.ingest)
    unscanned = await api.post("/v1/messages", message(text=GTUBE.decode() + "\n"))
    assert unscanned.status == 202, unscanned.body
    scanned = [e for e in await api.ingest.events(0) if e.kind is EventKind.SCANNED]
    assert [e.message_id for e in scanned] == [submission.id]  # only the first was scanned
