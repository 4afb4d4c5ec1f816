"""``postline reputation`` and ``postline pool status`` through ``shared.cli.main``, on records
published to an embedded bus file as the reputation stage writes them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from shared import cli
from shared.bus.embedded import EmbeddedBus
from shared.cli.pool import status_rows
from shared.config import EmbeddedConfig, load_config
from shared.reputation import DAY
from shared.wire.records import (
    Reputation,
    ReputationBucket,
    ReputationCounts,
    WarmupState,
)
from shared.wire.topics import REPUTATION

T0 = 1_780_000_000.0
DAY0 = int(T0 // DAY)
WARMING = "192.0.2.10"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "postline.toml"
    path.write_text(
        f'[embedded]\npath = "{tmp_path / "bus.db"}"\npartitions = 2\n'
        f'[pools.pool.new]\naddresses = [{{ address = "{WARMING}", warmup = true }},'
        ' { address = "192.0.2.11", warmup = true }, { address = "192.0.2.12" }]\n'
    )
    return path


def bucket(sent: int, hard: int = 0, complaints: int = 0) -> tuple[ReputationBucket, ...]:
    counts = ReputationCounts(
        sent=sent, delivered=sent - hard, hard_bounces=hard, complaints=complaints
    )
    return (ReputationBucket(hour=int(T0 // 3600), counts=counts),)


RECORDS = [
    Reputation(
        key="tenant|shop",
        scope="tenant",
        tenant="shop",
        buckets=bucket(500, hard=71),
        level="paused",
        level_since=T0,
        updated_at=T0,
    ),
    Reputation(
        key="domain|shop|shop.test",
        scope="domain",
        tenant="shop",
        domain="shop.test",
        buckets=bucket(500, hard=71),
        level="warning",
        level_since=T0,
        updated_at=T0,
    ),
    Reputation(
        key="provider|shop|google",
        scope="provider",
        tenant="shop",
        provider="google",
        buckets=bucket(300, complaints=3),
        updated_at=T0,
    ),
    Reputation(key="tenant|other", scope="tenant", tenant="other", buckets=bucket(20)),
    Reputation(
        key=f"address|{WARMING}|google",
        scope="address",
        address=WARMING,
        provider="google",
        warmup=WarmupState(
            step=2, day=DAY0, allowance=500, sent=120, started_day=DAY0 - 2, changed_at=T0
        ),
    ),
]


def publish(config: Path) -> None:
    async def write() -> None:
        bus = EmbeddedBus(EmbeddedConfig(path=config.parent / "bus.db", partitions=2))
        await bus.start()
        try:
            await bus.publish([REPUTATION.out(r) for r in RECORDS])
        finally:
            await bus.close()

    asyncio.run(write())


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out + err


def test_the_table_per_tenant(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    publish(config)
    code, out = run(config, capsys, "reputation", "shop")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == [
        "TENANT", "SCOPE", "NAME", "SENT", "DELIVERED", "BOUNCE", "COMPLAINT", "BLOCK",
        "LEVEL", "SINCE",
    ]  # fmt: skip
    assert lines[1].split() == [
        "shop", "tenant", "-", "500", "429", "14.2%", "0.0%", "0.0%", "paused",
        "2026-05-28T20:26:40Z",
    ]  # fmt: skip
    assert lines[2].split()[:3] == ["shop", "domain", "shop.test"]
    assert lines[3].split()[:3] == ["shop", "provider", "google"]
    assert lines[3].split()[6] == "1.0%"  # 3 complaints of 300 delivered
    assert len(lines) == 4  # the other tenant and the address are not shown
    code, out = run(config, capsys, "reputation", "--json")
    rows = [json.loads(item) for item in out.splitlines()]
    assert [(r["tenant"], r["scope"]) for r in rows] == [
        ("other", "tenant"),
        ("shop", "tenant"),
        ("shop", "domain"),
        ("shop", "provider"),
    ]
    assert rows[1]["bounce_rate"] == 71 / 500 and rows[1]["level"] == "paused"
    code, out = run(config, capsys, "reputation", "ghost")
    assert (code, out) == (1, "no reputation records for tenant ghost\n")


def test_pool_status(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    publish(config)
    code, out = run(config, capsys, "pool", "status", "--json")
    assert code == 0, out
    rows = [json.loads(item) for item in out.splitlines()]
    assert [(r["source"], r["provider"], r["step"], r["allowance"]) for r in rows] == [
        (WARMING, "google", 2, 500),
        ("192.0.2.11", "-", 0, 50),
    ]
    assert rows[0]["health"] == "advancing (stuck)"  # its last advance was long before now
    assert rows[1]["health"] == "not started"
    code, out = run(config, capsys, "pool", "status")
    assert out.splitlines()[0].split() == [
        "SOURCE", "PROVIDER", "DAY", "STEP", "ALLOWANCE", "SENT", "TODAY", "HEALTH",
    ]  # fmt: skip


def test_status_rows_on_a_given_day(config: Path) -> None:
    pools = load_config(config, environ={}).core.pools
    [today, _] = status_rows(pools, RECORDS, T0)
    assert (today["day"], today["sent_today"], today["health"]) == (3, 120, "advancing")
    [tomorrow, _] = status_rows(pools, RECORDS, T0 + DAY)
    assert (tomorrow["day"], tomorrow["sent_today"]) == (4, 0)  # not rolled over yet
