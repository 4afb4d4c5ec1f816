"""The content policy through the sending API: the same check as SMTP, answered as a
problem naming the check and the SMTP reply, and nothing on the bus."""

from __future__ import annotations

import base64

from shared.wire.records import EventKind
from shared.wire.topics import SUBMITTED
from tests.services.ingest.api.conftest import Api, StartApi, message

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 4


def attached(name: str, data: bytes) -> dict[str, object]:
    return message(attachments=[{"filename": name, "content": base64.b64encode(data).decode()}])


async def test_an_exe_is_refused_and_a_pdf_is_accepted(api: Api) -> None:
    answer = await api.post("/v1/messages", attached("tool.exe", b"MZ"))
    assert answer.status == 422, answer.body
    problem = answer.json
    assert problem["check"] == "attachment"
    assert problem["reply"] == (
        '550 5.7.1 Attachment "tool.exe" refused: file type .exe is not accepted'
    )
    answer = await api.post("/v1/messages", attached("report.pdf", PDF))
    assert answer.status == 202, answer.body
    [submission] = await api.ingest.records(SUBMITTED, 1)
    assert submission.id == answer.json["id"]
    rejected = [e for e in await api.ingest.events(1) if e.kind is EventKind.REJECTED]
    assert [e.check for e in rejected] == ["attachment"]


async def test_an_attachment_over_the_size_limit_is_too_large(start_api: StartApi) -> None:
    api = await start_api(content={"max_attachment_size": "1KiB"})
    answer = await api.post("/v1/messages", attached("report.pdf", PDF))
    assert answer.status == 413, answer.body
    assert answer.json["check"] == "attachment_size"
    assert answer.json["reply"].startswith('552 5.3.4 Attachment "report.pdf" is 1033 bytes')
