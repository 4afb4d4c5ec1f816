"""``postline run`` on the development config, as a real process, end to end.

The process starts all four stages on the embedded bus in an empty directory (creating its
certificate, DKIM key and secret), takes a message on the relay port, delivers it through
``--deliver-to`` into a local sink, and the message shows up in ``postline message show``.
Ports are ephemeral (environment overrides of the dev config), so the test never collides
with a ``make run`` on the same machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import smtplib
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from shared.cli.run import ROUTES_ENV, deliver_to_environment
from shared.config import load_config
from testing.smtpsink import SmtpSink

REPO = Path(__file__).resolve().parents[3]
DEV_CONFIG = REPO / "deploy" / "local" / "postline.toml"
POSTLINE = str(Path(sys.executable).parent / "postline")
DEADLINE = 60.0
#: The stages ``postline run`` starts as processes of their own (runtime.separate_processes).
SEPARATE = {"ingest", "signer", "deliverer"}

#: The dev config with every port ephemeral and logs as JSON (to read the bound ports).
EPHEMERAL = {
    "POSTLINE__HTTP__PORT": "0",
    "POSTLINE__BOUNCER__LISTEN_PORT": "0",
    "POSTLINE__LOG__FORMAT": "json",
    "POSTLINE__INGEST__LISTENERS": (
        '[{name = "relay", host = "127.0.0.1", port = 0, mode = "relay"},'
        ' {name = "submission", host = "127.0.0.1", port = 0, mode = "submission"}]'
    ),
}


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The test's environment without the caller's POSTLINE_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("POSTLINE")} | extra


class Logs:
    """Reads the process's JSON log lines and remembers the ports it bound."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.stream = stream
        self.ports: dict[str, int] = {}
        self.children: dict[str, int] = {}  # stage process name -> PID
        self.lines: list[str] = []
        self.found = asyncio.Event()

    async def read(self) -> None:
        async for raw in self.stream:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a traceback line
            if event.get("event") == "http listening":
                # The run's port comes first; its stage processes' ports follow.
                self.ports.setdefault("http", event["port"])
            if event.get("event") == "stage process started":
                self.children[event["stage"]] = event["pid"]
            if event.get("event") == "listening":
                self.ports[event["listener"]] = event["port"]
            if {"http", "relay"} <= self.ports.keys() and self.children.keys() == SEPARATE:
                self.found.set()


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def http_text(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        return str(reply.read().decode())


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone: it has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def wait_ready(port: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while await asyncio.to_thread(http_status, port, "/readyz") != 200:
        assert loop.time() < deadline, "/readyz never answered 200"
        await asyncio.sleep(0.05)


def send(port: int) -> str:
    """Send one message to the relay port; the message id from ``queued as``."""
    body = "From: app@postline.localhost\r\nTo: you@example.com\r\nSubject: hello\r\n\r\nHello.\r\n"
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("test.localhost")
        client.mail("app@postline.localhost")
        client.rcpt("you@example.com")
        code, reply = client.data(body.encode())
    assert code == 250, reply
    match = re.search(rb"queued as (\w+)", reply)
    assert match, reply
    return match.group(1).decode()


async def start_run(cwd: Path, env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    """``postline run`` on the dev config in ``cwd``, stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        POSTLINE,
        "--config",
        str(DEV_CONFIG),
        "run",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def postline(*args: str, cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        POSTLINE,
        "--config",
        str(DEV_CONFIG),
        *args,
        cwd=cwd,
        env=clean_env(EPHEMERAL),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.slow
async def test_run_dev_config_delivers_through_deliver_to(tmp_path: Path, rspamd_url: str) -> None:
    # The dev config scans with the rspamd of make test (make run's with make rspamd-up).
    env = clean_env(EPHEMERAL | {"POSTLINE__INGEST__SCANNING__URL": rspamd_url})
    async with SmtpSink() as sink:
        proc = await start_run(tmp_path, env, "--deliver-to", f"127.0.0.1:{sink.port}")
        assert proc.stderr is not None and proc.stdout is not None
        logs = Logs(proc.stderr)
        reader = asyncio.create_task(logs.read())
        try:
            await asyncio.wait_for(logs.found.wait(), DEADLINE)
            await wait_ready(logs.ports["http"])
            # Ingest, the signer and the deliverer run in processes of their own (the
            # default); the run's port answers for them.
            metrics = await asyncio.to_thread(http_text, logs.ports["http"], "/metrics")
            assert 'postline_stage_ready{process="signer",stage="signer"} 1.0' in metrics
            assert 'postline_stage_ready{process="ingest",stage="ingest"} 1.0' in metrics
            assert 'postline_stage_ready{process="run",stage="bouncer"} 1.0' in metrics
            message_id = await asyncio.to_thread(send, logs.ports["relay"])
            (received,) = await sink.wait_for(1, timeout=DEADLINE)
            assert received.rcpt_tos == ("you@example.com",)
            assert b"DKIM-Signature:" in received.data and b"d=postline.localhost" in received.data
            assert received.mail_from.endswith("@bounces.postline.localhost")  # VERP

            # The sink has the message before the deliverer (another process) commits its
            # outcome: ask until the event is there.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DEADLINE
            while True:
                code, out, err = await postline("message", "show", message_id, cwd=tmp_path)
                assert code == 0, err
                if "delivered" in out or loop.time() > deadline:
                    break
                await asyncio.sleep(0.1)
            kinds = [line.split()[1] for line in out.splitlines()[1:] if line.startswith("  2")]
            assert kinds == ["accepted", "scanned", "signed", "delivered"]
            assert "-> you@example.com: delivered" in out

            # A second `make run` on the same data/ is refused before its banner (issue 11).
            code, out, err = await postline("run", cwd=tmp_path)
            assert code == 2 and "already in use by process" in err, err
            assert "swaks" not in out

            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), DEADLINE) == 0, "\n".join(logs.lines)
            assert not [pid for pid in logs.children.values() if alive(pid)]
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await asyncio.wait_for(reader, DEADLINE)
        banner = (await proc.stdout.read()).decode()
    assert "swaks --server 127.0.0.1:" in banner
    assert "IN TXT" in banner and "_domainkey.postline.localhost." in banner
    assert f"mail for * goes to smarthost 127.0.0.1:{sink.port}" in banner
    assert (tmp_path / "data" / "dkim").is_dir()
    assert (tmp_path / "data" / "secrets" / "verp.key").stat().st_mode & 0o777 == 0o600


async def test_stage_command_refuses_missing_files_instead_of_creating_them(
    tmp_path: Path,
) -> None:
    code, out, err = await postline("ingest", cwd=tmp_path)
    assert code == 1
    assert "ingest.tls.cert" in err and "no such file" in err
    assert not (tmp_path / "data" / "tls").exists()
    assert "swaks" not in out  # no banner outside ``run``


def test_deliver_to_sets_a_catch_all_opportunistic_route() -> None:
    env = deliver_to_environment("127.0.0.1:2526", {})
    config = load_config(None, env)
    assert config.core.deliverer["routes"] == [
        {"domains": ["*"], "host": "127.0.0.1:2526", "tls": "opportunistic", "verify_certs": False}
    ]
    assert ROUTES_ENV not in deliver_to_environment(None, {})


def test_deliver_to_rejects_a_target_without_port() -> None:
    from shared import cli  # noqa: PLC0415

    with pytest.raises(SystemExit):
        cli.build_parser(cli.discover_stages()).parse_args(["run", "--deliver-to", "nohost"])


def test_run_without_a_config_file_points_at_make_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [POSTLINE, "run"],
        cwd=tmp_path,
        env=clean_env({}),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert result.returncode == 1
    assert "ingest." in result.stderr and "make run" in result.stderr
    assert "deploy/local/postline.toml" in result.stderr
