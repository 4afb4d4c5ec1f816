"""The lifecycle commands of ``deploy/local/postgres.sh`` on a private port and run dir: up
prints the DSN last and makes the `postline` superuser and database on loopback, a second up
finds the same server, status tells, down stops it by its PID and removes the data, and a
stale pidfile is never taken for a running server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "deploy/local/postgres.sh"


def _script(*args: str, port: int, run_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "POSTLINE_POSTGRES_PORT": str(port),
        "POSTLINE_POSTGRES_RUN": str(run_dir),
    }
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120, check=False
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


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """A run dir the server's user can reach: as root the server runs as another user, who
    cannot enter pytest's private temporary directory."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="postline-pg-test-", dir="/var/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _psql(dsn: str, sql: str) -> str:
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed")
    result = subprocess.run(
        [psql, "-X", "-At", "-d", dsn, "-c", sql],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.postgres
@pytest.mark.slow
def test_up_twice_status_down(postgres_dsn: str, run_dir: Path) -> None:
    # postgres_dsn: the shared server is up, so the package is installed (no apt-get here).
    port = _free_port()
    dsn = f"postgresql://postline@127.0.0.1:{port}/postline"
    try:
        up = _script("up", port=port, run_dir=run_dir)
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip().splitlines()[-1] == f"dsn={dsn}"
        pid = int((run_dir / "postgres.pid").read_text())
        assert _alive(pid)

        again = _script("up", port=port, run_dir=run_dir)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip().splitlines()[-1] == f"dsn={dsn}"
        assert "already running" in again.stderr
        assert int((run_dir / "postgres.pid").read_text()) == pid

        row = _psql(
            dsn,
            "SELECT current_user || ' ' || current_database() || ' ' || rolsuper::text || ' '"
            " || current_setting('listen_addresses') || ' ' || current_setting('fsync')"
            " FROM pg_roles WHERE rolname = current_user",
        )
        assert row == "postline postline true 127.0.0.1 off"

        status = _script("status", port=port, run_dir=run_dir)
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith(f"running pid={pid} dsn={dsn}")
    finally:
        down = _script("down", port=port, run_dir=run_dir)
    assert down.returncode == 0, down.stderr
    assert not _alive(pid)
    assert not (run_dir / "data").exists()
    assert not (run_dir / "postgres.pid").exists()
    status = _script("status", port=port, run_dir=run_dir)
    assert status.returncode == 1
    assert status.stdout.strip() == f"not running (port {port})"


def test_status_and_down_when_not_running(run_dir: Path) -> None:
    port = _free_port()
    status = _script("status", port=port, run_dir=run_dir)
    assert status.returncode == 1
    assert status.stdout.strip() == f"not running (port {port})"
    down = _script("down", port=port, run_dir=run_dir)
    assert down.returncode == 0, down.stderr
    assert "not running" in down.stderr


def test_stale_pidfile_is_not_taken_for_a_running_server(run_dir: Path) -> None:
    # PID 1 is alive but is not our postmaster: down must neither signal it nor fail.
    (run_dir / "postgres.pid").write_text("1\n")
    port = _free_port()
    assert _script("status", port=port, run_dir=run_dir).returncode == 1
    down = _script("down", port=port, run_dir=run_dir)
    assert down.returncode == 0, down.stderr
    assert "stale pidfile" in down.stderr
    assert not (run_dir / "postgres.pid").exists()


def test_a_bad_port_is_refused(run_dir: Path) -> None:
    result = _script("up", port=0, run_dir=run_dir)
    assert result.returncode == 1
    assert "bad POSTLINE_POSTGRES_PORT: 0" in result.stderr
