"""``postline pool check`` through ``shared.cli.main`` (run in a thread, as a user runs it)
against a real DNS server on loopback: one line per address, exit 1 on a mismatch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shared import cli
from testing.dnsserver import DnsServer, ptr_records

CONFIG = """
[deliverer]
ehlo_name = "relay.postline.test"

[pools]
default = "shared"

[pools.pool.shared]
addresses = [
  { address = "192.0.2.1", ehlo_name = "out1.postline.test" },
  { address = "192.0.2.2" },
]

[pools.pool.new]
addresses = [{ address = "192.0.2.3", ehlo_name = "out3.postline.test", warmup = true }]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "postline.toml"
    path.write_text(CONFIG)
    return path


async def run(config: Path, *args: str) -> int:
    return await asyncio.to_thread(cli.main, ["--config", str(config), "pool", "check", *args])


async def test_every_address_checked_and_a_mismatch_fails(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = {
        **ptr_records("192.0.2.1", "out1.postline.test"),
        **ptr_records("192.0.2.2", "relay.postline.test"),  # deliverer.ehlo_name applies
        **ptr_records("192.0.2.3", "mail.isp.test"),
    }
    async with DnsServer(records) as dns:
        nameserver = f"127.0.0.1:{dns.port}"
        failing = await run(config, "--nameserver", nameserver)
        out = capsys.readouterr().out
        passing = await run(config, "shared", "--nameserver", nameserver)
        only_shared = capsys.readouterr().out
    lines = out.splitlines()
    assert failing == 1
    assert [line.split()[:3] for line in lines] == [
        ["OK", "shared", "192.0.2.1"],
        ["OK", "shared", "192.0.2.2"],
        ["MISMATCH", "new", "192.0.2.3"],
    ]
    assert "ehlo relay.postline.test: PTR relay.postline.test -> 192.0.2.2" in lines[1]
    assert "out3.postline.test is not its PTR name mail.isp.test" in lines[2]
    assert passing == 0
    assert len(only_shared.splitlines()) == 2


async def test_an_unknown_pool_is_refused(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run(config, "nope", "--nameserver", "127.0.0.1:9") == 2
    assert "unknown pool: nope" in capsys.readouterr().out
