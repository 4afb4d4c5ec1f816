"""Postline OS processes for the harness: start with a config, wait for /readyz, stop by PID.

Each process runs the real ``postline`` console script (``postline --config F ingest``,
``... run``, ``... topics create``), with its output in a log file in the work directory so a
failing test can show why. Stopping sends SIGTERM to that PID (the runtime drains), then
SIGKILL to the same PID after a deadline; nothing is ever stopped by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from shared.config import ENV_PREFIX


class ProcessFailed(AssertionError):
    """A Postline process exited early, or did not get ready in time (its log tail attached)."""


def postline_argv() -> list[str]:
    """The command that starts ``postline`` in this interpreter's environment."""
    script = Path(sys.executable).parent / "postline"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from shared.cli import main; sys.exit(main())"]


def clean_environ(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without inherited ``POSTLINE__`` overrides, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.pop("POSTLINE_CONFIG", None)
    env.update(extra)
    return env


def log_tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file ("" when it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_command(
    args: Sequence[str],
    config: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """Run a one-shot ``postline`` command (e.g. ``topics create``); fails on a non-zero exit."""
    done = subprocess.run(
        [*postline_argv(), "--config", str(config), *args],
        env=clean_environ(env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise ProcessFailed(f"postline {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done


class PostlineProcess:
    """One long-running ``postline --config F <command>`` process."""

    def __init__(
        self, name: str, command: str, config: Path, http_port: int, env: Mapping[str, str]
    ) -> None:
        self.name = name
        self.command = command
        self.config = config
        self.http_port = http_port
        self.log_path = config.parent / f"{name}.log"
        self._env = clean_environ(env)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The OS process id (only after :meth:`start`)."""
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        """Launch the process, its stdout and stderr going to ``<name>.log``."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*postline_argv(), "--config", str(self.config), self.command],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def ready(self) -> bool:
        """Whether ``/readyz`` answers 200; raises :class:`ProcessFailed` if the process died."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise ProcessFailed(
                f"{self.name} exited with {self.proc.returncode}:\n{log_tail(self.log_path)}"
            )
        url = f"http://127.0.0.1:{self.http_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM this PID, wait for the drain, SIGKILL it past ``timeout``; the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # SIGKILL to the same PID, never by name
            return self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL this PID (never by name) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def exited(self) -> int | None:
        """The exit code once the process ended on its own or was stopped, else ``None``."""
        return None if self.proc is None else self.proc.poll()


def wait_ready(processes: Sequence[PostlineProcess], timeout: float) -> None:
    """Poll every process's ``/readyz`` until all answer 200; fails at the deadline."""
    deadline = time.monotonic() + timeout
    pending = list(processes)
    while pending:
        pending = [p for p in pending if not p.ready()]
        if not pending:
            return
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}:\n{log_tail(p.log_path)}" for p in pending)
            raise ProcessFailed(
                f"not ready after {timeout:.0f}s: {[p.name for p in pending]}\n{tails}"
            )
        time.sleep(0.1)
