"""``postline quarantine list|show|release|delete`` as real processes, on an embedded bus file
and on the real Kafka broker."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from shared.bus.base import Bus
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.config import EmbeddedConfig, KafkaConfig
from shared.quarantine import entry_record
from shared.wire.records import Event, EventKind, Submission, new_id
from shared.wire.topics import EVENTS, QUARANTINE, SUBMITTED
from testing.quarantine import AT, DATA, quarantined

POSTLINE = str(Path(sys.executable).parent / "postline")
DEADLINE = 60.0
SPAM = quarantined("0123456789abcdef0123456789abcdef")
PHISH = quarantined("0123456789abcdef9999999999999999", tenant="acme", sender="x@acme.test")
OTHER = quarantined("fedcba9876543210fedcba9876543210", tenant="acme", sender="y@acme.test")


@dataclass
class Setup:
    """The environment the commands run with, and a bus of the test's own to check."""

    env: dict[str, str]
    bus: Bus


async def postline(*args: str, env: dict[str, str]) -> tuple[int, bytes, str]:
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
    return proc.returncode, out, err.decode()


async def text(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    code, out, err = await postline(*args, env=env)
    return code, out.decode(), err


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    bus: Bus
    if request.param == "embedded":
        bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db"))
        env = {"POSTLINE__EMBEDDED__PATH": str(tmp_path / "bus.db")}
    else:
        bootstrap = str(request.getfixturevalue("kafka_bootstrap"))
        prefix = str(request.getfixturevalue("topic_prefix"))
        bus = KafkaBus(
            KafkaConfig(bootstrap=bootstrap, topic_prefix=prefix), instance=f"qt-{new_id()[:8]}"
        )
        env = {
            "POSTLINE__BUS__KIND": "kafka",
            "POSTLINE__KAFKA__BOOTSTRAP": bootstrap,
            "POSTLINE__KAFKA__TOPIC_PREFIX": prefix,
        }
    await bus.start()
    await bus.ensure_topics([SUBMITTED.name, QUARANTINE.name, EVENTS.name])
    await bus.publish([entry_record(SPAM), entry_record(PHISH), entry_record(OTHER)])
    yield Setup(env, bus)
    await bus.close()


async def submitted(bus: Bus) -> list[Submission]:
    return [SUBMITTED.decode(m.value) async for m in bus.read_to_end(SUBMITTED.name) if m.value]


async def audited(bus: Bus) -> list[Event]:
    events = [EVENTS.decode(m.value) async for m in bus.read_to_end(EVENTS.name) if m.value]
    return [e for e in events if e.kind is EventKind.QUARANTINE]


async def test_list_show_release_delete(setup: Setup) -> None:
    env = setup.env
    code, out, err = await text("quarantine", "list", env=env)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == sorted(
        m.submission.id for m in (SPAM, PHISH, OTHER)
    )
    spam = lines[0].split()
    assert spam[2:] == [
        "shop",
        "app@shop.test",
        "rcpts=2",
        "score=9.50/6.00",
        "action=add",  # "add header", rspamd's action as is
        "header",
        "BAYES_SPAM,FUZZY_X,R_SUSPICIOUS_URL",
    ]
    assert spam[1].endswith("d")  # quarantined days ago (AT is in 2026)
    code, out, _ = await text("quarantine", "list", "--tenant", "acme", "--json", env=env)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["id"], r["sender"]) for r in rows] == [
        (PHISH.submission.id, "x@acme.test"),
        (OTHER.submission.id, "y@acme.test"),
    ]
    code, out, _ = await text("quarantine", "list", "--tenant", "nobody", env=env)
    assert (code, out) == (0, "no quarantined messages of tenant nobody\n")

    code, out, _ = await text("quarantine", "show", "fedcba987654", env=env)
    assert code == 0
    assert "recipients   b@dest.test, c@dest.test" in out
    assert "auth=shop-app" in out and "reference    ref-7f3a" in out
    assert out.rstrip().endswith("Subject: Cheap watches\r\nMessage-ID: <q1@shop.test>")
    code, raw, _ = await postline("quarantine", "show", OTHER.submission.id, "--raw", env=env)
    assert (code, raw) == (0, DATA)

    # An ambiguous prefix, an unknown id: exit 1, one line, and nothing released.
    code, _, err = await text("quarantine", "release", "0123456789ab", env=env)
    assert code == 1
    assert err.startswith("postline quarantine: id '0123456789ab' is ambiguous: 2 messages")
    code, _, err = await text("quarantine", "release", SPAM.submission.id, "ffffffff", env=env)
    assert code == 1 and "no message 'ffffffff' in postline.quarantine" in err
    assert await submitted(setup.bus) == []

    code, out, err = await text(
        "quarantine", "release", SPAM.submission.id, "--why", "newsletter, not spam", env=env
    )
    assert code == 0, err
    assert out.splitlines() == [
        f"{SPAM.submission.id}  ok  released to postline.submitted",
        "1 released, 0 left as they were",
    ]
    [sent] = await submitted(setup.bus)
    assert sent.received_at > AT  # accepted again (shared.quarantine)
    assert sent == msgspec.structs.replace(SPAM.submission, received_at=sent.received_at)
    [released] = await audited(setup.bus)
    assert released.classification == "released" and released.by.startswith("cli:")
    assert released.detail == "newsletter, not spam"

    # Again: gone from the quarantine, exit 1, nothing sent twice.
    code, _, err = await text("quarantine", "release", SPAM.submission.id, env=env)
    assert code == 1 and "already released or deleted" in err
    assert len(await submitted(setup.bus)) == 1
    assert len(await audited(setup.bus)) == 1

    code, out, _ = await text("quarantine", "delete", "0123456789abcdef9", "fedcba9876", env=env)
    assert code == 0 and out.splitlines()[-1] == "2 deleted, 0 left as they were"
    code, out, _ = await text("quarantine", "list", env=env)
    assert (code, out) == (0, "no quarantined messages\n")
    assert len(await submitted(setup.bus)) == 1
    actions = sorted((e.classification, e.message_id) for e in await audited(setup.bus))
    assert actions == [
        ("deleted", PHISH.submission.id),
        ("deleted", OTHER.submission.id),
        ("released", SPAM.submission.id),
    ]
