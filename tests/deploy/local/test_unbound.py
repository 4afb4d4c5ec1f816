"""The lifecycle commands of ``deploy/local/unbound.sh`` on a private port and run dir:
up answers on loopback and writes its pidfile, status tells, down stops it by its PID, and
a stale pidfile is never taken for a running unbound. (No name outside unbound's built-in
``localhost.`` zone is asked: nothing leaves the machine.)"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

SCRIPT = Path(__file__).resolve().parents[3] / "deploy/local/unbound.sh"


def _script(*args: str, port: int, run_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "POSTLINE_UNBOUND_PORT": str(port), "POSTLINE_UNBOUND_RUN": str(run_dir)}
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_status_down(tmp_path: Path, unbound_binary: str) -> None:
    port = _free_port()
    run_dir = tmp_path / "run"
    pid = 0
    up = _script("up", port=port, run_dir=run_dir)
    try:
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip().splitlines()[-1] == f"nameserver=127.0.0.1:{port}"
        pid = int((run_dir / "unbound.pid").read_text().strip())
        assert _alive(pid)
        reply = dns.query.udp(
            dns.message.make_query("localhost.", "A"), "127.0.0.1", port=port, timeout=5
        )
        assert reply.rcode() == dns.rcode.NOERROR
        status = _script("status", port=port, run_dir=run_dir)
        assert status.returncode == 0 and status.stdout.startswith(f"running pid={pid} ")
        again = _script("up", port=port, run_dir=run_dir)  # idempotent
        assert again.returncode == 0 and "already running" in again.stderr
    finally:
        down = _script("down", port=port, run_dir=run_dir)
    assert down.returncode == 0, down.stderr
    assert pid and not _alive(pid)
    assert not (run_dir / "unbound.pid").exists()
    status = _script("status", port=port, run_dir=run_dir)
    assert status.returncode == 1 and status.stdout.strip() == f"not running (port {port})"


def test_stale_pidfile_is_not_taken_for_a_running_unbound(tmp_path: Path) -> None:
    # PID 1 is alive but is not our unbound: down must neither signal it nor fail.
    (tmp_path / "unbound.pid").write_text("1\n")
    port = _free_port()
    assert _script("status", port=port, run_dir=tmp_path).returncode == 1
    down = _script("down", port=port, run_dir=tmp_path)
    assert down.returncode == 0, down.stderr
    assert "stale pidfile" in down.stderr
    assert not (tmp_path / "unbound.pid").exists()
