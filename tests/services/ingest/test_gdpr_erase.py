"""After ``postline gdpr erase``, ingest still refuses mail to the erased address: its
suppression is now keyed by the address's keyed hash, which ingest computes for every
recipient it checks (real SMTP session, embedded bus, the CLI as an operator runs it)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from shared import cli
from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig
from shared.wire.topics import CONTROL, REPUTATION, SUPPRESSIONS
from testing.gdpr_rows import ERASED, OTHER, topic_records
from tests.services.ingest.client import Raw
from tests.services.ingest.conftest import StartIngest


async def erase(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """Publish the address's records, erase it with the CLI; the key file it used."""
    bus = EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=2))
    await bus.start()
    try:
        await bus.ensure_topics([SUPPRESSIONS.name, CONTROL.name, REPUTATION.name])
        await bus.publish(topic_records())
    finally:
        await bus.close()
    config = tmp_path / "postline.toml"
    config.write_text(
        f'[embedded]\npath = "{tmp_path / "bus.db"}"\npartitions = 2\n'
        f'[runtime]\ndata_dir = "{tmp_path / "data"}"\n'
    )
    args = ["--config", str(config), "gdpr", "erase", ERASED, "--yes"]
    code = await asyncio.to_thread(cli.main, args)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["erased"]["suppressions_hashed"] == 3
    return tmp_path / "data" / "secrets" / "gdpr.key"


async def rcpt(port: int, address: str) -> tuple[int, str]:
    raw = await Raw.open(port)
    try:
        assert (await raw.reply())[0] == 220
        assert (await raw.cmd("EHLO client.test"))[0] == 250
        assert (await raw.cmd("MAIL FROM:<app@example.com>"))[0] == 250
        return await raw.cmd(f"RCPT TO:<{address}>")
    finally:
        await raw.close()


async def test_the_erased_address_is_still_refused(
    start_ingest: StartIngest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = await erase(tmp_path, capsys)
    ingest = await start_ingest(
        trusted_networks=["127.0.0.0/8"],
        sections={"secrets": {"gdpr_hash_key_file": str(key)}},
    )
    port = ingest.port("relay")
    code, text = await rcpt(port, "Bob@Dest.test")
    assert (code, text[:5]) == (550, "5.1.1"), text
    assert (await rcpt(port, OTHER))[0] == 550  # never erased: as before
    assert (await rcpt(port, "dave@dest.test"))[0] == 250
