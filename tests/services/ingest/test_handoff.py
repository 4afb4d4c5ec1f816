"""Durable hand-off and suppression handling over real SMTP on the embedded bus."""

from __future__ import annotations

import asyncio
import time

import aiosmtplib
import pytest

from shared.bus.base import Bus
from shared.wire.records import EventKind, Suppression, SuppressionReason
from shared.wire.topics import SUBMITTED, SUPPRESSIONS
from tests.services.ingest.client import Raw
from tests.services.ingest.conftest import FailingBus, StartIngest
from tests.services.ingest.sessions import MESSAGE, logged_in


async def test_bus_failure_answers_451_and_records_nothing(start_ingest: StartIngest) -> None:
    failing: list[FailingBus] = []

    def wrap(bus: Bus) -> Bus:
        failing.append(FailingBus(bus))
        return failing[0]

    ingest = await start_ingest(wrap=wrap)
    failing[0].failing = True
    client = await logged_in(ingest)
    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        await client.sendmail("alice@example.com", ["bob@dest.test"], MESSAGE)
    assert (info.value.code, info.value.message[:5]) == (451, "4.3.0")
    # The bus is back: the client's retry is accepted, and it is the only record.
    failing[0].failing = False
    _, reply = await client.sendmail("alice@example.com", ["bob@dest.test"], MESSAGE)
    [sub] = await ingest.records(SUBMITTED, 1)
    assert reply.endswith(sub.id)
    events = await ingest.events(1)
    assert [e.kind for e in events] == [EventKind.ACCEPTED]


async def test_slow_bus_past_the_deadline_answers_451(start_ingest: StartIngest) -> None:
    class StuckBus(FailingBus):
        async def publish(self, records, timeout=None):  # type: ignore[no-untyped-def]
            if self.failing:
                await asyncio.Event().wait()  # never acknowledges
            await self.inner.publish(records, timeout)

    holder: list[StuckBus] = []

    def wrap(bus: Bus) -> Bus:
        holder.append(StuckBus(bus))
        return holder[0]

    ingest = await start_ingest(wrap=wrap)
    ingest.stage.core.handoff.timeout = 0.2
    holder[0].failing = True
    client = await logged_in(ingest)
    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        await client.sendmail("alice@example.com", ["bob@dest.test"], MESSAGE)
    assert info.value.code == 451


def suppression(address: str, scope: str = "") -> Suppression:
    return Suppression(
        address=address,
        reason=SuppressionReason.HARD_BOUNCE,
        at=time.time(),
        scope=scope,
        source="test",
    )


async def test_suppressed_recipient_is_refused(start_ingest: StartIngest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ingest = await start_ingest()
    await ingest.bus.publish([SUPPRESSIONS.out(suppression("Gone@Dest.test"))])
    client = await logged_in(ingest)
    await client.mail("alice@example.com")
    deadline = time.monotonic() + 10
    while True:  # the table follows the topic; poll until the new entry applies
        try:
            await client.rcpt("gone@dest.test")
        except aiosmtplib.SMTPRecipientRefused as exc:
            assert (exc.code, exc.message) == (550, "5.1.1 Recipient is on the suppression list")
            break
        assert time.monotonic() < deadline, "suppression never applied"
        await client.rset()
        await client.mail("alice@example.com")
        await asyncio.sleep(0.05)
    events = [e for e in await ingest.events(1) if e.kind == EventKind.REJECTED]
    assert events[-1].check == "suppression" and events[-1].recipient == "gone@dest.test"
    await client.quit()


async def test_suppression_loaded_at_start_and_scoped(start_ingest: StartIngest) -> None:
    first = await start_ingest()
    await first.bus.publish(
        [
            SUPPRESSIONS.out(suppression("gone@dest.test")),
            SUPPRESSIONS.out(suppression("unsub@dest.test", scope="example.com")),
            SUPPRESSIONS.out(suppression("other@dest.test", scope="elsewhere.test")),
        ]
    )
    await first.stop()
    ingest = await start_ingest()  # same bus file: the table is read before serving
    client = await logged_in(ingest)
    await client.mail("alice@example.com")
    with pytest.raises(aiosmtplib.SMTPRecipientRefused):
        await client.rcpt("gone@dest.test")
    # Scoped (an unsubscribe from example.com's bulk mail): ingest cannot tell bulk from
    # transactional yet, so it accepts and the signer decides (issue 11).
    assert (await client.rcpt("unsub@dest.test"))[0] == 250
    assert (await client.rcpt("other@dest.test"))[0] == 250
    await client.quit()


async def test_suppressed_recipient_dropped_with_event(start_ingest: StartIngest) -> None:
    first = await start_ingest()
    await first.bus.publish([SUPPRESSIONS.out(suppression("gone@dest.test"))])
    await first.stop()
    ingest = await start_ingest(suppression="drop")
    client = await logged_in(ingest)
    errors, _ = await client.sendmail(
        "alice@example.com", ["gone@dest.test", "bob@dest.test"], MESSAGE
    )
    assert errors == {}
    [sub] = await ingest.records(SUBMITTED, 1)
    assert sub.rcpt_to == ("bob@dest.test",)
    events = await ingest.events(2)
    kinds = {(e.kind, e.recipient) for e in events}
    assert kinds == {(EventKind.ACCEPTED, ""), (EventKind.SUPPRESSED, "gone@dest.test")}
    # Every recipient suppressed: 250, no Submission, only the event.
    await client.sendmail("alice@example.com", ["gone@dest.test"], MESSAGE)
    events = await ingest.events(3)
    assert [e.kind for e in events].count(EventKind.SUPPRESSED) == 2
    assert len(await ingest.records(SUBMITTED, 1)) == 1


async def test_drain_finishes_transaction_then_421(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.1/32"])
    port = ingest.port("relay")
    busy = await Raw.open(port)
    idle = await Raw.open(port)
    for raw in (busy, idle):
        await raw.reply()
        await raw.cmd("EHLO client.test")
    await busy.cmd("MAIL FROM:<app@example.com>")
    await busy.cmd("RCPT TO:<bob@dest.test>")
    assert (await busy.cmd("DATA"))[0] == 354

    ingest.ctx.stopping.set()  # SIGTERM
    assert await idle.reply() == (421, "4.3.2 Service shutting down, try again later")
    assert await idle.closed()
    code, text = await busy.cmd(MESSAGE + b".")
    assert code == 250 and "queued as" in text
    assert await busy.reply() == (421, "4.3.2 Service shutting down, try again later")
    assert await busy.closed()
    await asyncio.wait_for(ingest.task, 15)
    with pytest.raises(OSError):
        await Raw.open(port)
    assert len(await ingest.records(SUBMITTED, 1)) == 1


async def test_drain_grace_over_answers_421(start_ingest: StartIngest) -> None:
    ingest = await start_ingest(trusted_networks=["127.0.0.1/32"], drain_timeout="0.5s")
    raw = await Raw.open(ingest.port("relay"))
    await raw.reply()
    await raw.cmd("EHLO client.test")
    await raw.cmd("MAIL FROM:<app@example.com>")  # then the client stalls mid-transaction
    ingest.ctx.stopping.set()
    assert await raw.reply() == (421, "4.3.2 Service shutting down, try again later")
    assert await raw.closed()
    await asyncio.wait_for(ingest.task, 15)
