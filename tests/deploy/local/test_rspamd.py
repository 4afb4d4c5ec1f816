"""The local rspamd of ``deploy/local/rspamd.sh``: offline and deterministic verdicts, and the
script's lifecycle commands.

The verdict tests scan through rspamd's HTTP protocol (``POST /checkv2`` on the normal
worker) as ingest does, with the envelope in request headers and ``User`` set, so rspamd
treats the message as outbound mail from an authenticated sender. GTUBE must be "reject"
and a short ordinary message "no action" with a low score: a check that asked the network
(DNS lists, SPF, DKIM, fuzzy storage ...) would make the clean message's score depend on it.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "deploy/local/rspamd.sh"

# rspamd's test pattern (Generic Test for Unsolicited Bulk Email): always "reject".
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

ENVELOPE = {
    "From": "alice@example.com",
    "Rcpt": "bob@example.org",
    "IP": "203.0.113.7",
    "Helo": "mail.example.com",
    "User": "alice@example.com",
}


def _message(body: str) -> bytes:
    return (
        "From: Alice Example <alice@example.com>\r\n"
        "To: Bob Example <bob@example.org>\r\n"
        "Subject: Notes from Tuesday's meeting\r\n"
        "Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
        "Message-ID: <20261201100000.4711@mail.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()


CLEAN_BODY = (
    "Hi Bob,\r\n\r\n"
    "here are the notes from Tuesday's meeting. We agreed to move the release to next\r\n"
    "week and to look at the open tickets together on Thursday morning.\r\n\r\n"
    "Best regards,\r\nAlice"
)


async def _check(url: str, message: bytes, queue_id: str) -> dict[str, Any]:
    headers = {**ENVELOPE, "Queue-Id": queue_id}
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(f"{url.rstrip('/')}/checkv2", data=message, headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json(content_type=None)
        return result


@pytest.mark.rspamd
async def test_gtube_is_rejected(rspamd_url: str) -> None:
    result = await _check(rspamd_url, _message(f"Hi Bob,\r\n\r\n{GTUBE}\r\n"), "gtube-1")
    assert result["action"] == "reject", result
    assert "GTUBE" in result["symbols"], result


@pytest.mark.rspamd
async def test_clean_message_gets_no_action(rspamd_url: str) -> None:
    result = await _check(rspamd_url, _message(CLEAN_BODY), "clean-1")
    assert result["action"] == "no action", result
    assert result["score"] < 6, result


def _script(*args: str, port: int, run_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "POSTLINE_RSPAMD_PORT": str(port)}
    if run_dir is not None:
        env["POSTLINE_RSPAMD_RUN"] = str(run_dir)
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.rspamd
def test_status_reports_the_running_instance(rspamd_url: str) -> None:
    parts = urlsplit(rspamd_url)
    if parts.hostname != "127.0.0.1" or parts.port is None:
        pytest.skip(f"{rspamd_url} is not deploy/local/rspamd.sh's instance on 127.0.0.1")
    result = _script("status", port=parts.port)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("running pid="), result.stdout
    assert f"url=http://127.0.0.1:{parts.port}" in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_status_and_down_when_not_running(tmp_path: Path) -> None:
    port = _free_port()
    status = _script("status", port=port, run_dir=tmp_path)
    assert status.returncode == 1
    assert status.stdout.strip() == f"not running (port {port})"
    down = _script("down", port=port, run_dir=tmp_path)
    assert down.returncode == 0, down.stderr
    assert "not running" in down.stderr


def test_stale_pidfile_is_not_taken_for_a_running_rspamd(tmp_path: Path) -> None:
    # PID 1 is alive but is not our rspamd: down must neither signal it nor fail.
    (tmp_path / "rspamd.pid").write_text("1\n")
    port = _free_port()
    assert _script("status", port=port, run_dir=tmp_path).returncode == 1
    down = _script("down", port=port, run_dir=tmp_path)
    assert down.returncode == 0, down.stderr
    assert "stale pidfile" in down.stderr
    assert not (tmp_path / "rspamd.pid").exists()
