"""``postline credential list|hold|release`` through ``shared.cli.main`` on an embedded bus
file: the hold on postline.control with its event, refusals that name the problem, and the
release (the hold's tombstone) with its event."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from shared import cli
from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig
from shared.credential_holds import key
from shared.wire.records import ControlVerb, Event, EventKind
from shared.wire.topics import CONTROL, EVENTS
from testing.topics import read_all


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "postline.toml"
    path.write_text(f'[embedded]\npath = "{tmp_path / "bus.db"}"\npartitions = 2\n')
    return path


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out + err


def published(config: Path) -> tuple[dict[bytes, bytes], list[Event]]:
    async def read() -> tuple[dict[bytes, bytes], list[Event]]:
        bus = EmbeddedBus(EmbeddedConfig(path=config.parent / "bus.db", partitions=2))
        await bus.start()
        try:
            table = await bus.read_table(CONTROL.name)
            events = [EVENTS.decode(m.value) for m in await read_all(bus, EVENTS.name) if m.value]
            return table, [e for e in events if e.kind is EventKind.CREDENTIAL]
        finally:
            await bus.close()

    return asyncio.run(read())


def test_hold_list_release(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config, capsys, "credential", "list") == (0, "no credential held\n")
    code, out = run(config, capsys, "credential", "hold", "shop-app", "--why", "leaked password")
    assert (code, out) == (
        0,
        "held shop-app: every ingest refuses its mail with 451 until released\n",
    )
    table, events = published(config)
    action = CONTROL.decode(table[key("shop-app").encode()])
    assert (action.verb, action.target, action.why) == (
        ControlVerb.CREDENTIAL_HOLD,
        "credential:shop-app",
        "leaked password",
    )
    assert action.by.startswith("cli:")
    [held] = events
    assert (held.credential, held.classification, held.detail, held.stage) == (
        "shop-app",
        "held",
        "leaked password",
        "cli",
    )
    code, out = run(config, capsys, "credential", "list", "--json")
    [row] = [json.loads(line) for line in out.splitlines()]
    assert (row["credential"], row["why"]) == ("shop-app", "leaked password")
    code, out = run(config, capsys, "credential", "hold", "shop-app", "--why", "again")
    assert (code, out) == (
        1,
        "postline: credential shop-app is already held (postline credential list)\n",
    )
    code, out = run(config, capsys, "credential", "release", "shop-app", "--why", "new password")
    assert (code, out) == (0, "released shop-app: it may send again\n")
    table, events = published(config)
    assert key("shop-app").encode() not in table
    assert [(e.classification, e.detail) for e in events] == [
        ("held", "leaked password"),
        ("released", "new password"),
    ]
    code, out = run(config, capsys, "credential", "release", "shop-app")
    assert (code, out) == (
        1,
        "postline: credential shop-app is not held (postline credential list)\n",
    )


def test_a_hold_needs_a_reason(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(config, capsys, "credential", "hold", "shop-app", "--why", "  ")
    assert code == 1 and "needs the credential's name and a reason" in out
