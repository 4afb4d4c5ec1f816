"""Compromised-account detection on real parts (the embedded bus and Kafka): the reputation
stage running beside ingest reads a credential's accepted events, at its baseline for a day
then 50x that in one hour, and holds it (a credential_hold action and a held event); ingest
then answers the credential's next MAIL FROM over real SMTP with 451 4.7.1 and a rejected
event; a release through ``postline credential``'s code lets it send again.

The events carry their own times (a fixed day in the past): the stage's clock is the newest
event time, so nothing here depends on the wall clock or on how fast the machine is (the
waits have deadlines, never expected durations).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiosmtplib
import pytest

from services.reputation.stage import ReputationStage, create
from shared.bus.base import Bus
from shared.cli.credential import release
from shared.config import KafkaConfig, load_config
from shared.credential_holds import key, read_holds
from shared.reputation import HOUR, credential_key
from shared.wire.records import ControlVerb, Event, EventKind, Reputation
from shared.wire.topics import CONTROL, EVENTS, REPUTATION, SUBMITTED, TENANTS
from testing.stage import stage_context
from testing.topics import read_all
from tests.services.ingest.conftest import Running, StartIngest
from tests.services.ingest.sessions import MESSAGE, logged_in

DEADLINE = 60.0
LOGIN = "alice"  # the users file's login (tests/services/ingest/conftest.py)
T0 = 1_780_000_000.0 - 1_780_000_000.0 % HOUR  # an hour's start, long past
BASELINE = 10  # messages an hour for a day
BURST = 50 * BASELINE


def accepted(n: int, at: float) -> list[Event]:
    return [
        Event(
            kind=EventKind.ACCEPTED,
            message_id=uuid.uuid4().hex,
            at=at + i * 0.001,
            sender="alice@example.com",
            stage="ingest",
            tenant="default",
            credential=LOGIN,
            recipients=1,
            recipient_domains=("dest.test",),
        )
        for i in range(n)
    ]


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def credential_record(bus: Bus) -> Reputation | None:
    value = (await bus.read_table(REPUTATION.name)).get(credential_key(LOGIN).encode())
    return REPUTATION.decode(value) if value is not None else None


async def credential_events(bus: Bus) -> list[Event]:
    events = [EVENTS.decode(m.value) for m in await read_all(bus, EVENTS.name) if m.value]
    return [e for e in events if e.kind is EventKind.CREDENTIAL]


@pytest.fixture(params=[pytest.param("kafka", marks=pytest.mark.kafka), "embedded"])
def kafka(request: pytest.FixtureRequest) -> tuple[str, str] | None:
    """The broker and a topic prefix of its own on Kafka; ``None`` on the embedded bus."""
    if request.param != "kafka":
        return None
    return (request.getfixturevalue("kafka_bootstrap"), request.getfixturevalue("topic_prefix"))


@pytest.fixture
async def ingest(kafka: tuple[str, str] | None, start_ingest: StartIngest) -> Running:
    return await start_ingest(kafka=kafka)


@pytest.fixture
async def reputation(
    ingest: Running, kafka: tuple[str, str] | None, tmp_path: Path
) -> AsyncIterator[ReputationStage]:
    """The reputation stage on ingest's bus (on Kafka a client of its own, as a pod's)."""
    bus, owned = ingest.bus, None
    if kafka is not None:
        from shared.bus.kafka import KafkaBus  # noqa: PLC0415  (aiokafka only when used)

        config = KafkaConfig(bootstrap=kafka[0], topic_prefix=kafka[1])
        bus = owned = KafkaBus(config, instance=f"reputation-{uuid.uuid4().hex[:8]}")
        await owned.start()
    await bus.ensure_topics([EVENTS.name, TENANTS.name, REPUTATION.name, CONTROL.name])
    path = tmp_path / "reputation.toml"
    path.write_text("[reputation.credentials]\nbaseline_buckets = 24\n")
    ctx = stage_context("reputation", load_config(path, environ={}), bus)
    stage = await create(ctx)
    task = asyncio.create_task(stage.run(ctx))
    await asyncio.wait_for(ctx.wait_ready(), DEADLINE)
    yield stage
    ctx.stopping.set()
    await asyncio.wait_for(task, DEADLINE)
    if owned is not None:
        await owned.close()


async def test_fifty_times_the_baseline_is_held_refused_at_mail_from_and_released(
    ingest: Running, reputation: ReputationStage
) -> None:
    bus = ingest.bus
    baseline = [e for hour in range(24) for e in accepted(BASELINE, T0 + hour * HOUR)]
    await bus.publish([EVENTS.out(e) for e in baseline])

    async def baseline_counted() -> bool:
        # The burst goes after the whole day is counted: events on other partitions of
        # postline.events may otherwise be read first, making the baseline the stage sees.
        record = await credential_record(bus)
        window = record.credential if record is not None else None
        return window is not None and sum(b.messages for b in window.buckets) == len(baseline)

    await until(baseline_counted, "the baseline was not counted")
    await bus.publish([EVENTS.out(e) for e in accepted(BURST, T0 + 24 * HOUR)])

    async def held() -> bool:
        return any(e.classification == "held" for e in await credential_events(bus))

    await until(held, "the credential was not held")
    [event] = await credential_events(bus)
    assert (event.credential, event.by, event.stage) == (LOGIN, "reputation", "reputation")
    # Held as soon as a batch of the burst reached 10x (volume_factor): how far the stage
    # got into the burst by then depends on its batches, the baseline does not.
    assert event.figures["baseline_messages"] == BASELINE
    assert 10 * BASELINE <= event.figures["messages"] <= BURST
    assert re.fullmatch(
        r"messages \d+ this 1h, \d+\.\dx its baseline of 10\.0 \(mean of 24 active 1h buckets\)",
        event.detail,
    )
    holds = await read_holds(bus)
    assert holds[LOGIN].verb is ControlVerb.CREDENTIAL_HOLD and holds[LOGIN].why == event.detail
    assert key(LOGIN).encode() in await bus.read_table(CONTROL.name)

    async def ingest_follows(expected: bool) -> bool:
        return (ingest.stage.holds.get(LOGIN) is not None) is expected

    await until(lambda: ingest_follows(True), "ingest did not follow the hold")
    client = await logged_in(ingest)  # AUTH still succeeds: the client learns why below
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await client.sendmail("alice@example.com", ["bob@dest.test"], MESSAGE)
    assert refused.value.code == 451
    assert refused.value.message.startswith(
        "4.7.1 credential held for unusual sending activity; contact your provider (ref "
    )

    async def rejected() -> bool:
        events = [EVENTS.decode(m.value) for m in await read_all(bus, EVENTS.name) if m.value]
        return any(
            e.kind is EventKind.REJECTED and e.check == "credential_held" and e.credential == LOGIN
            for e in events
        )

    await until(rejected, "no rejected event for the held credential")

    # The operator releases it (postline credential release): accepted again.
    await release(bus, LOGIN, "the customer changed the password", "cli:test")
    await until(lambda: ingest_follows(False), "ingest did not follow the release")
    await client.rset()
    await client.sendmail("alice@example.com", ["bob@dest.test"], MESSAGE)
    [submitted] = await ingest.records(SUBMITTED, 1)
    assert submitted.mail_from == "alice@example.com"
    await client.quit()

    async def restarted() -> bool:
        # Released: the current bucket started afresh; once the new message moved the
        # stage's clock a day past the old buckets, the record may have left the topic.
        record = await credential_record(bus)
        return record is None or (record.credential is not None and not record.credential.held)

    await until(restarted, "the reputation stage did not apply the release")
    assert [e.classification for e in await credential_events(bus)] == ["held", "released"]
