"""The sending API through the content scanner (a real rspamd): the same verdicts as SMTP."""

from __future__ import annotations

from shared.wire.topics import SUBMITTED
from tests.services.ingest.api.conftest import TENANT, StartApi, message
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
