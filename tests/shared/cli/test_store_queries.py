"""``postline message show|search`` and ``postline report`` on the store (SQLite at the
embedded default path, and PostgreSQL named by ``[store].url``), and ``message search``'s
fallback to the events topic when there is no store."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest

from shared.bus.embedded import EmbeddedBus
from shared.cli import main
from shared.config import EmbeddedConfig, load_config
from shared.store.db import open_database
from shared.store.location import store_url as located
from shared.wire.records import Event, EventKind
from shared.wire.topics import EVENTS
from testing.storedata import DAY, MSG_A, MSG_B, NOW, other_events, shop_events
from testing.storefixtures import DAYS, query_url
from testing.storerows import insert_events, rebuild_rollups
from testing.storeschema import create_schema

__all__ = ["query_url"]


@pytest.fixture
def config(tmp_path: Path, query_url: str) -> Path:
    """A config whose store holds the test events: the embedded default SQLite file, or
    the PostgreSQL database in ``[store].url``."""
    data = tmp_path / "data"
    text = f'[runtime]\ndata_dir = "{data}"\n[embedded]\npath = "{tmp_path / "bus.db"}"\n'
    if query_url.startswith("sqlite"):
        url = f"sqlite://{data / 'store.sqlite3'}"
    else:
        url = query_url
        text += f'[store]\nurl = "{url}"\n'

    async def fill() -> None:
        db = await open_database(url)
        try:
            await create_schema(db, DAYS)
            await insert_events(db, shop_events() + other_events())
            await rebuild_rollups(db)
        finally:
            await db.close()

    asyncio.run(fill())
    path = tmp_path / "postline.toml"
    path.write_text(text)
    assert located(load_config(path), existing_only=True) == url
    return path


def run(config: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_message_show_from_the_store(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(config, capsys, "message", "show", MSG_A[:9])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"message {MSG_A}: 8 event(s)"
    assert lines[1].split()[1:3] == ["accepted", MSG_A]
    assert 'reply="550 5.1.1"' in lines[4] and "reason=userunknown" in lines[4]
    assert lines[-2:] == ["  -> ann@gmail.com: complained", "  -> bob@outlook.com: bounced"]
    code, out, _ = run(config, capsys, "message", "show", MSG_B, "--json")
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["accepted", "delivered"]
    code, out, err = run(config, capsys, "message", "show", "a1b2c3d4")
    assert code == 1 and "several messages" in err
    code, out, err = run(config, capsys, "message", "show", "ffffffff")
    assert code == 1 and "no events for message ffffffff in the store" in err


def test_message_search(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    since, until = str(DAY), str(NOW)
    window = ["--since", since, "--until", until]
    code, out, err = run(
        config,
        capsys,
        "message",
        "search",
        "--recipient",
        "ann@gmail.com",
        "--status",
        "delivered",
        *window,
    )
    assert code == 0, err
    assert [line.split()[1] for line in out.splitlines()] == ["delivered"] * 3
    code, out, err = run(
        config,
        capsys,
        "message",
        "search",
        "--tenant",
        "shop",
        "--sender",
        "news@shop.example",
        "--limit",
        "3",
        "--csv",
        *window,
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["kind"] for r in rows] == ["complained", "clicked", "opened"]
    assert "(more: --cursor " in err
    cursor = err.split("--cursor ")[1].split(")")[0]
    code, out, _ = run(
        config,
        capsys,
        "message",
        "search",
        "--tenant",
        "shop",
        "--sender",
        "news@shop.example",
        "--limit",
        "3",
        "--json",
        "--cursor",
        cursor,
        *window,
    )
    page = json.loads(out)
    assert [e["kind"] for e in page["events"]] == ["opened", "bounced", "deferred"]
    code, _, err = run(config, capsys, "message", "search", "--status", "sent", *window)
    assert code == 1 and "not an event kind" in err


def test_report(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    window = ["--since", "2026-12-06T00:00:00Z", "--until", str(NOW)]
    code, out, err = run(config, capsys, "report", "--tenant", "shop", *window)
    assert code == 0, err
    assert "accepted 2  delivered 2  deferred 1  bounced 2 (hard 1, soft 1)" in out
    assert "deliverability 50.0%" in out and "1  hard/userunknown" in out
    # Only providers with an outcome are listed (accepted events carry no provider).
    listed = out.split("by provider:\n")[1].split("  top")[0].splitlines()
    assert listed and all(line.split()[0] != "delivered" for line in listed)
    code, out, _ = run(
        config, capsys, "report", "--tenant", "shop", "--campaign", "spring-sale", "--csv", *window
    )
    values = {
        (r["section"], r["name"], r["metric"]): r["value"] for r in csv.DictReader(io.StringIO(out))
    }
    assert values[("totals", "", "accepted")] == "1"
    code, out, _ = run(config, capsys, "report", "--json", "--hourly", *window)
    report = json.loads(out)
    assert report["tenant"] is None and report["totals"]["delivered"] == 3
    assert len(report["hours"]) == 6


def test_without_a_store_search_reads_the_topic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [
        Event(
            kind=EventKind.DELIVERED,
            message_id="m1",
            at=DAY + 10,
            recipient="a@x.test",
            tenant="shop",
        ),
        Event(
            kind=EventKind.BOUNCED,
            message_id="m2",
            at=DAY + 20,
            recipient="a@x.test",
            tenant="shop",
        ),
        Event(
            kind=EventKind.DELIVERED,
            message_id="m3",
            at=DAY + 30,
            recipient="b@x.test",
            tenant="shop",
        ),
    ]

    async def publish() -> None:
        bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db"))
        await bus.start()
        try:
            await bus.publish([EVENTS.out(event) for event in events])
        finally:
            await bus.close()

    asyncio.run(publish())
    config = tmp_path / "postline.toml"
    config.write_text(
        f'[runtime]\ndata_dir = "{tmp_path / "data"}"\n[embedded]\npath = "{tmp_path / "bus.db"}"\n'
    )
    assert located(load_config(config), existing_only=True) is None
    code, out, err = run(
        config,
        capsys,
        "message",
        "search",
        "--recipient",
        "A@x.test",
        "--since",
        str(DAY),
        "--until",
        str(NOW),
    )
    assert code == 0, err
    assert [line.split()[1:3] for line in out.splitlines()] == [
        ["bounced", "m2"],
        ["delivered", "m1"],
    ]
    code, _, err = run(config, capsys, "report", "--tenant", "shop")
    assert code == 2 and "no store" in err
