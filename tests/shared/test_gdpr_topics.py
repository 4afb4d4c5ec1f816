"""``shared.gdpr`` on held and queued mail: a quarantined message only about the erased address
is deleted (tombstoned), one for other recipients too is kept and reported; deferred mail in
flight is reported, never touched. Real embedded bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared import gdpr
from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig
from shared.wire.records import ClientInfo, Quarantined, QueueEntry, Submission
from shared.wire.topics import QUARANTINE, QUEUE
from testing.gdpr_rows import AT, ERASED, OTHER

KEY = b"k" * 32


def held(message_id: str, mail_from: str, *rcpt_to: str) -> Quarantined:
    submission = Submission(
        id=message_id,
        received_at=AT,
        client=ClientInfo(ip="192.0.2.1"),
        mail_from=mail_from,
        rcpt_to=rcpt_to,
        data=b"Subject: hello\r\n\r\nbody\r\n",
        tenant="acme",
    )
    return Quarantined(submission=submission, at=AT, reference="q-1")


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[EmbeddedBus]:
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=2))
    await bus.start()
    yield bus
    await bus.close()


async def test_held_and_queued_mail(bus: EmbeddedBus) -> None:
    only = held("a" * 32, "news@acme.test", ERASED.upper())
    shared_with_others = held("b" * 32, "news@acme.test", ERASED, OTHER)
    sent_by = held("c" * 32, ERASED, OTHER)
    unrelated = held("d" * 32, "news@acme.test", OTHER)
    queued = QueueEntry(
        message_id="e" * 32, delivery_id="e1", domain="dest.test", recipients=(ERASED,), at=AT
    )
    await bus.publish(
        [QUARANTINE.out(q) for q in (only, shared_with_others, sent_by, unrelated)]
        + [QUEUE.out(queued)]
    )
    found = await gdpr.find(bus, ERASED)
    assert sorted(h.submission.id for h in found.quarantine) == ["a" * 32, "b" * 32, "c" * 32]
    assert [q.delivery_id for q in found.queue] == ["e1"]
    view = gdpr.export_view(found)
    assert all("data" not in h for h in view["quarantine"])  # envelope and size only
    assert gdpr.erased_counts(found, ERASED)["quarantine_kept"] == 1
    assert (await gdpr.find(bus, ERASED, "other")).quarantine == []  # another tenant's view

    await bus.publish(gdpr.erase_records(found, ERASED, KEY))
    table = await bus.read_table(QUARANTINE.name)
    assert sorted(key.decode() for key in table) == ["b" * 32, "d" * 32]
    assert list(await bus.read_table(QUEUE.name)) == [b"e1"]  # mail in flight is left alone
