"""The same promises on the Kafka bus: a 250 means the record is on postline.submitted."""

from __future__ import annotations

import time

import aiosmtplib
import pytest

from shared.bus.base import Bus
from shared.wire.records import EventKind, Suppression, SuppressionReason
from shared.wire.topics import SUBMITTED, SUPPRESSIONS
from tests.services.ingest.conftest import PASSWORD, FailingBus, StartIngest

pytestmark = pytest.mark.kafka

MESSAGE = b"From: alice@example.com\r\nTo: bob@dest.test\r\nSubject: hi\r\n\r\nHello \xe9.\r\n"


async def test_kafka_starttls_auth_suppression_and_bus_failure(
    start_ingest: StartIngest, kafka_bootstrap: str, topic_prefix: str
) -> None:
    holder: list[FailingBus] = []

    def wrap(bus: Bus) -> Bus:
        holder.append(FailingBus(bus))
        return holder[0]

    ingest = await start_ingest(kafka=(kafka_bootstrap, topic_prefix), wrap=wrap)
    await holder[0].inner.publish(
        [
            SUPPRESSIONS.out(
                Suppression(
                    address="gone@dest.test", at=time.time(), reason=SuppressionReason.COMPLAINT
                )
            )
        ]
    )
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=ingest.port("submission"), start_tls=False)
    await client.connect()
    await client.starttls(tls_context=ingest.pki.client_context())
    await client.login("alice", PASSWORD)
    _, reply = await client.sendmail("alice@example.com", ["bob@dest.test"], MESSAGE)
    [sub] = await ingest.records(SUBMITTED, 1, timeout=60)
    assert reply.endswith(sub.id) and sub.body_8bit
    assert MESSAGE.split(b"\r\n\r\n")[0] in sub.data and sub.data.endswith(
        b"\r\n\r\nHello \xe9.\r\n"
    )

    holder[0].failing = True
    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        await client.sendmail("alice@example.com", ["bob@dest.test"], MESSAGE)
    assert info.value.code == 451
    holder[0].failing = False

    deadline = time.monotonic() + 30
    while True:  # the suppression table follows the topic
        await client.mail("alice@example.com")
        try:
            await client.rcpt("gone@dest.test")
        except aiosmtplib.SMTPRecipientRefused as exc:
            assert exc.code == 550
            break
        assert time.monotonic() < deadline
        await client.rset()
    await client.quit()
    events = await ingest.events(2, timeout=60)
    assert sorted((e.kind, e.check) for e in events) == [
        (EventKind.ACCEPTED, ""),
        (EventKind.REJECTED, "suppression"),
    ]
    assert len(await ingest.records(SUBMITTED, 1, timeout=60)) == 1
