"""``postline store migrate`` and ``postline store status`` against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from shared.store.migrate import LATEST
from testing.store import store_database

POSTLINE = str(Path(sys.executable).parent / "postline")


def postline(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [POSTLINE, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def config_for(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "postline.toml"
    path.write_text(f'[runtime]\ndata_dir = "{tmp_path / "data"}"\n\n[store]\nurl = "{url}"\n')
    return path


async def test_migrate_then_status(tmp_path: Path, url: str) -> None:
    config = config_for(tmp_path, url)
    first = postline(config, "store", "migrate")
    assert first.returncode == 0, first.stderr
    assert f"applied {', '.join(str(v) for v in range(1, LATEST + 1))}" in first.stdout
    again = postline(config, "store", "migrate")
    assert again.returncode == 0 and "up to date" in again.stdout

    async with store_database(url) as db:
        await db.execute(
            "INSERT INTO rollup_hourly (hour, day, tenant, sender_domain, campaign, provider,"
            " accepted) VALUES ($1, 20260528, 'acme', '', '', '', 1)",
            1_780_000_000 // 3600 * 3600,
        )
    status = postline(config, "store", "status", "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["reachable"] is True
    assert (shown["schema_version"], shown["code_version"]) == (LATEST, LATEST)
    assert shown["days"] == [20260528]
    assert "password" not in shown["url"]


def test_status_of_a_database_that_does_not_answer(tmp_path: Path) -> None:
    config = config_for(tmp_path, "postgresql://postline:secret@127.0.0.1:1/postline")
    status = postline(config, "store", "status", "--json")
    assert status.returncode == 2
    shown = json.loads(status.stdout)
    assert shown["reachable"] is False
    assert "secret" not in status.stdout and "***" in shown["url"]
