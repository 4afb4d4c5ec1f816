"""``postline events tail`` and ``postline message show`` as real processes, on the embedded
bus (a file another process wrote) and on the real Kafka broker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.bus.base import Bus
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.config import EmbeddedConfig, KafkaConfig
from shared.wire.eventjson import event_id, event_object
from shared.wire.records import Event, EventKind, SmtpReply
from shared.wire.topics import EVENTS

POSTLINE = str(Path(sys.executable).parent / "postline")
DEADLINE = 60.0
AT = 1795818566.0

EVENTS_OF_M1 = [
    Event(kind=EventKind.ACCEPTED, message_id="m1", at=AT, stage="ingest"),
    Event(kind=EventKind.SIGNED, message_id="m1", at=AT + 1, stage="signer"),
    Event(
        kind=EventKind.DEFERRED,
        message_id="m1",
        at=AT + 2,
        recipient="a@x.test",
        reply=SmtpReply(code=421, enhanced="4.7.0", text="Try again later"),
        attempt=1,
    ),
    Event(
        kind=EventKind.DELIVERED,
        message_id="m1",
        at=AT + 3,
        recipient="a@x.test",
        reply=SmtpReply(code=250, text="OK"),
        mx="mx1.x.test",
        attempt=2,
    ),
]
OTHER = Event(kind=EventKind.DELIVERED, message_id="m2", at=AT, recipient="b@x.test")


async def publish(bus: Bus, events: list[Event]) -> None:
    await bus.start()
    try:
        await bus.publish([EVENTS.out(event) for event in events])
    finally:
        await bus.close()


async def postline(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("POSTLINE")}
    proc = await asyncio.create_subprocess_exec(
        POSTLINE,
        *args,
        env=base | env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def tail_lines(*args: str, env: dict[str, str], count: int) -> list[str]:
    """Start ``events tail``, read ``count`` lines, then stop it (it never ends by itself)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("POSTLINE")}
    proc = await asyncio.create_subprocess_exec(
        POSTLINE, "events", "tail", *args, env=base | env, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        return [
            (await asyncio.wait_for(proc.stdout.readline(), DEADLINE)).decode().rstrip()
            for _ in range(count)
        ]
    finally:
        proc.terminate()
        await proc.wait()


@pytest.fixture
def embedded(tmp_path: Path) -> dict[str, str]:
    return {"POSTLINE__EMBEDDED__PATH": str(tmp_path / "bus.db")}


async def test_message_show_prints_the_history_in_order(
    tmp_path: Path, embedded: dict[str, str]
) -> None:
    await publish(EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db")), [*EVENTS_OF_M1, OTHER])
    code, out, err = await postline("message", "show", "m1", "--quiet", "0.5", env=embedded)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "message m1: 4 event(s)"
    assert [line.split()[1] for line in lines[1:5]] == [
        "accepted",
        "signed",
        "deferred",
        "delivered",
    ]
    assert 'reply="421 4.7.0 Try again later" attempt=1' in lines[3]
    assert lines[5] == "  -> a@x.test: delivered"


async def test_message_show_json_and_unknown_message(
    tmp_path: Path, embedded: dict[str, str]
) -> None:
    await publish(EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db")), EVENTS_OF_M1)
    code, out, _ = await postline("message", "show", "m1", "--json", "--quiet", "0.5", env=embedded)
    assert code == 0
    objects = [json.loads(line) for line in out.splitlines()]
    # Exactly what a webhook sends: the id of the record's bytes, the kind's fields.
    assert objects == [
        event_object(event, event_id(EVENTS.encode(event))) for event in EVENTS_OF_M1
    ]
    assert objects[2]["data"]["reply"] == {
        "code": 421,
        "enhanced": "4.7.0",
        "text": "Try again later",
    }
    code, out, err = await postline("message", "show", "nope", "--quiet", "0.5", env=embedded)
    assert (code, out) == (1, "")
    assert "no events for message nope" in err


async def test_tail_filters_and_follows(tmp_path: Path, embedded: dict[str, str]) -> None:
    await publish(EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db")), [*EVENTS_OF_M1, OTHER])
    lines = await tail_lines(
        "--from-beginning", "--kind", "delivered", "--message", "m1", env=embedded, count=1
    )
    assert lines[0].split()[1:4] == ["delivered", "m1", "a@x.test"]
    assert "mx=mx1.x.test" in lines[0]


async def test_tail_json_prints_the_webhook_objects(
    tmp_path: Path, embedded: dict[str, str]
) -> None:
    await publish(EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db")), [*EVENTS_OF_M1, OTHER])
    lines = await tail_lines(
        "--from-beginning", "--json", "--kind", "delivered", env=embedded, count=2
    )
    delivered = [EVENTS_OF_M1[3], OTHER]
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(
        event_id(EVENTS.encode(event)) for event in delivered
    )
    by_message = {json.loads(line)["data"]["message_id"]: json.loads(line) for line in lines}
    assert by_message["m1"] == event_object(
        EVENTS_OF_M1[3], event_id(EVENTS.encode(EVENTS_OF_M1[3]))
    )


def test_events_schema_prints_the_published_files() -> None:
    docs = Path(__file__).resolve().parents[3] / "docs"
    for args, name in (((), "events.schema.json"), (("--markdown",), "events.md")):
        result = subprocess.run(
            [POSTLINE, "events", "schema", *args], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == (docs / name).read_text(), f"docs/{name} differs"


async def test_tail_without_a_bus_file_says_so(tmp_path: Path, embedded: dict[str, str]) -> None:
    code, _, err = await postline("events", "tail", env=embedded)
    assert code == 2
    assert "no embedded bus at" in err and str(tmp_path / "bus.db") in err
    assert not (tmp_path / "bus.db").exists()


@pytest.mark.kafka
async def test_message_show_and_tail_on_kafka(kafka_bootstrap: str, topic_prefix: str) -> None:
    config = KafkaConfig(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    bus = KafkaBus(config, instance="events-cli-test")
    await bus.start()
    try:
        await bus.ensure_topics([EVENTS.name])
    finally:
        await bus.close()
    await publish(KafkaBus(config, instance="events-cli-test"), [*EVENTS_OF_M1, OTHER])
    env = {
        "POSTLINE__BUS__KIND": "kafka",
        "POSTLINE__KAFKA__BOOTSTRAP": kafka_bootstrap,
        "POSTLINE__KAFKA__TOPIC_PREFIX": topic_prefix,
    }
    code, out, err = await postline("message", "show", "m1", env=env)
    assert code == 0, err
    assert [line.split()[1] for line in out.splitlines()[1:5]] == [
        "accepted",
        "signed",
        "deferred",
        "delivered",
    ]
    lines = await tail_lines("--from-beginning", "--kind", "delivered", env=env, count=2)
    assert sorted(line.split()[2] for line in lines) == ["m1", "m2"]
