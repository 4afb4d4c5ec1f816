"""The ``postline`` console script, run as a real subprocess."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import pytest

from services.ingest.auth import read_users
from shared import cli
from shared.config import Config
from shared.credentials import verify_secret
from shared.runtime.spec import StageSpec
from shared.runtime.stage import Stage, StageContext

POSTLINE = str(Path(sys.executable).parent / "postline")
TIMEOUT = 60


def postline(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script with a clean POSTLINE_* environment; ``stdin`` is
    piped in (never a terminal, as in CI or ``kubectl exec`` without ``-t``)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("POSTLINE")}
    return subprocess.run(
        [POSTLINE, *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=TIMEOUT,
        env=base | (env or {}),
        cwd=cwd,
        check=False,
    )


def test_version() -> None:
    result = postline("version")
    assert result.returncode == 0
    assert result.stdout.startswith("postline ")
    assert "Python 3." in result.stdout


def test_config_check_good_file(tmp_path: Path) -> None:
    # Every installed stage checks its section: a relay-only ingest needs no TLS files.
    path = tmp_path / "good.toml"
    path.write_text(
        '[http]\nport = 9100\n[runtime]\ndrain_timeout = "45s"\n'
        '[[ingest.listeners]]\nname = "relay"\nport = 2525\nmode = "relay"\n'
    )
    result = postline("config", "check", str(path))
    assert (result.returncode, result.stdout.strip()) == (0, f"ok: {path}")


def test_config_check_broken_file_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[runtime]\ndrain_timeout = "whenever"\n')
    result = postline("config", "check", str(path))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1  # one clear line, no traceback
    assert str(path) in result.stderr and "runtime.drain_timeout" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_toml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "syntax.toml"
    path.write_text("[http\n")
    result = postline("config", "check", str(path))
    assert result.returncode == 1 and "not valid TOML" in result.stderr


def test_config_show_uses_env_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "cfg.toml"
    path.write_text('[http]\nport = 9100\n[ingest]\nverp_secret = "hunter2"\n')
    env = {"POSTLINE_CONFIG": str(path), "POSTLINE__LOG__LEVEL": "debug"}
    result = postline("config", "show", env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["source"] == str(path)
    assert shown["http"]["port"] == 9100
    assert shown["log"]["level"] == "debug"
    assert shown["ingest"]["verp_secret"] == "(redacted)"
    assert "hunter2" not in result.stdout


def test_default_config_is_postline_toml_in_cwd(tmp_path: Path) -> None:
    (tmp_path / "postline.toml").write_text("[http]\nport = 9200\n")
    result = postline("config", "show", cwd=tmp_path)
    assert json.loads(result.stdout)["http"]["port"] == 9200


def test_topics_on_embedded_bus_are_implicit(tmp_path: Path) -> None:
    result = postline("topics", "list", cwd=tmp_path)
    assert result.returncode == 0 and "implicitly" in result.stdout


def test_topics_list_with_unreachable_kafka_is_one_line_exit_2(tmp_path: Path) -> None:
    env = {
        "POSTLINE__BUS__KIND": "kafka",
        "POSTLINE__KAFKA__BOOTSTRAP": "127.0.0.1:1",
        "POSTLINE__KAFKA__REQUEST_TIMEOUT": "2s",
    }
    result = postline("topics", "list", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("postline: bus unavailable")
    assert result.stderr.count("\n") == 1


def test_bad_partitions_override_is_rejected_before_contacting_kafka(tmp_path: Path) -> None:
    env = {"POSTLINE__BUS__KIND": "kafka", "POSTLINE__KAFKA__BOOTSTRAP": "127.0.0.1:1"}
    result = postline(
        "topics", "create", "--partitions-override", "postline.nope=3", env=env, cwd=tmp_path
    )
    assert result.returncode == 1
    assert "unknown topic 'postline.nope'" in result.stderr


@pytest.mark.kafka
def test_topics_create_and_list_on_the_real_broker(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = {
        "POSTLINE__BUS__KIND": "kafka",
        "POSTLINE__KAFKA__BOOTSTRAP": kafka_bootstrap,
        "POSTLINE__KAFKA__TOPIC_PREFIX": topic_prefix,
    }
    before = postline("topics", "list", env=env, cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    assert before.stdout.splitlines()[1:] == []  # nothing under a fresh prefix yet

    created = postline(
        "topics", "create", "--partitions-override", "postline.outbound=3", env=env, cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    assert "postline.submitted: created" in created.stdout

    listed = postline("topics", "list", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows["postline.outbound"][1:3] == ["3", "1"]
    assert rows["postline.suppressions"][3:5] == ["compact", "forever"]
    assert rows["postline.dead"][1] == "1"
    assert rows["postline.events"][4] == "14d"
    assert all(name.startswith("postline.") for name in rows)  # logical names, prefix stripped


class FakeSection(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    greeting: str = "hello"


def fake_spec(calls: list[tuple[str, object]]) -> StageSpec:
    """A stage as an entry point would yield it, with one extra command of its own."""

    async def create(_ctx: StageContext) -> Stage:
        raise AssertionError("not started in these tests")

    def check(config: Config) -> object:
        return config.section("signer", FakeSection)

    async def greet(args: argparse.Namespace, config: Config) -> int:
        calls.append((args.name, config.section("signer", FakeSection).greeting))
        return 3

    def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
        parser = commands.add_parser("greet", help="say hello")
        parser.add_argument("name")
        parser.set_defaults(handler=greet)

    return StageSpec(
        name="fakestage",
        help="a fake stage",
        create=create,
        order=1,
        add_commands=add_commands,
        check_config=check,
    )


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """Pretend one stage is installed (entry point discovery is the only thing replaced)."""
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(cli, "discover_stages", lambda: [fake_spec(calls)])
    monkeypatch.delenv("POSTLINE_CONFIG", raising=False)
    return calls


def test_stage_commands_get_the_loaded_config(
    installed: list[tuple[str, object]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[signer]\ngreeting = "hi"\n')
    assert cli.main(["--config", str(path), "greet", "bob"]) == 3
    assert installed == [("bob", "hi")]
    assert "fakestage" in cli.build_parser(cli.discover_stages()).format_help()


def test_config_check_runs_the_stage_section_check(
    installed: list[tuple[str, object]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[signer]\ngreting = 1\n")
    assert cli.main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == f"postline: {path}: signer.greting: unknown key (not a Postline setting)\n"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["ingest", "--config", "k8s.toml"], "k8s.toml"),  # the Deployments' form
        (["--config", "k8s.toml", "ingest"], "k8s.toml"),
        (["--config", "first.toml", "ingest", "--config", "k8s.toml"], "k8s.toml"),
        (["config", "check", "--config", "k8s.toml"], "k8s.toml"),  # nested
        (["greet", "bob", "--config", "k8s.toml"], "k8s.toml"),  # a stage-added command
        (["events", "tail", "--config", "k8s.toml", "--json"], "k8s.toml"),
        (["greet", "bob"], None),
    ],
)
def test_config_option_before_or_after_any_subcommand(
    installed: list[tuple[str, object]], argv: list[str], expected: str | None
) -> None:
    spec = cli.discover_stages()[0]
    real = dataclasses.replace(spec, name="ingest", add_commands=None)  # as if installed
    args = cli.build_parser([spec, real]).parse_args(argv)
    assert args.config == expected


def test_config_after_the_stage_command_reaches_the_handler(
    installed: list[tuple[str, object]], tmp_path: Path
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[signer]\ngreeting = "hi"\n')
    assert cli.main(["greet", "bob", "--config", str(path)]) == 3
    assert installed == [("bob", "hi")]


def test_config_check_takes_the_file_from_config(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[ingest.listeners]]\nname = "relay"\nport = 2525\nmode = "relay"\n')
    before = postline("--config", str(path), "config", "check")
    after = postline("config", "check", "--config", str(path))
    assert (before.returncode, before.stdout) == (0, f"ok: {path}\n"), before.stderr
    assert (after.returncode, after.stdout) == (0, f"ok: {path}\n"), after.stderr
    none = postline("config", "check", cwd=tmp_path)
    assert (none.returncode, none.stderr) == (
        1,
        "postline: config check: no config file: give FILE or --config FILE\n",
    )


def test_version_option() -> None:
    result = postline("--version")
    assert (result.returncode, result.stdout) == (0, "postline 0.1.0\n")


def test_no_command_prints_the_help_and_exits_2() -> None:
    result = postline()
    assert result.returncode == 2
    assert result.stderr.startswith("usage: postline")
    assert "COMMAND" in result.stderr and "ingest" in result.stderr  # the whole help


def test_user_add_reads_a_piped_password_with_password_file_dash(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    added = postline(
        "user", "add", "shop", "--domain", "shop.test", "--users-file", str(users),
        "--password-file", "-", stdin="twelve chars or more\n",
    )  # fmt: skip
    assert (added.returncode, added.stderr) == (0, ""), added.stderr
    entry = read_users(users).users["shop"]
    assert entry.domains == ["shop.test"]
    assert verify_secret(b"twelve chars or more", entry.secret)  # no newline in the secret


def test_user_add_without_a_terminal_says_how_instead_of_eoferror(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    result = postline(
        "user", "add", "shop", "--domain", "shop.test", "--users-file", str(users),
        stdin="twelve chars or more\n",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == (
        "postline user add: standard input is not a terminal: pass --password-file PATH "
        "(or --password-file - to read the password from standard input)\n"
    )
    assert not users.exists()


def test_run_without_stages_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "discover_stages", lambda: [])
    assert cli.main(["run"]) == 2
    assert "no stage is installed" in capsys.readouterr().err


FAKE_STAGE_MODULE = '''
"""A stage installed only for this test (found through its entry point)."""
from shared.runtime.batch import run_batch_loop
from shared.runtime.stage import StageSpec
from shared.wire.topics import EVENTS


class Echo:
    async def run(self, ctx):
        async def handle(items):
            return []

        await run_batch_loop(ctx, group="cli-test", topic=EVENTS, handle=handle,
                             metrics=ctx.metrics, poll_timeout=0.1)


async def create(ctx):
    return Echo()


STAGE = StageSpec(name="echo", help="echo test stage", create=create, order=5)
'''


def install_fake_stage(root: Path) -> dict[str, str]:
    """A module plus a dist-info on PYTHONPATH: entry point discovery finds it for real."""
    (root / "postline_fake_stage.py").write_text(FAKE_STAGE_MODULE)
    info = root / "postline_fake_stage-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: postline-fake-stage\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text("[postline.stages]\necho = postline_fake_stage:STAGE\n")
    return {"PYTHONPATH": str(root)}


def test_installed_stage_runs_and_drains_on_sigterm(tmp_path: Path) -> None:
    # ``postline run`` with every real stage is tests/shared/cli/test_run.py's.
    env = install_fake_stage(tmp_path)
    (tmp_path / "postline.toml").write_text(
        f'[http]\nport = 0\n[embedded]\npath = "{tmp_path / "bus.db"}"\n'
    )
    proc = subprocess.Popen(
        [POSTLINE, "echo"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("POSTLINE")} | env,
    )
    try:
        assert proc.stderr is not None
        port = 0
        for line in proc.stderr:
            event = json.loads(line)
            if event["event"] == "http listening":
                port = event["port"]
                break
        assert port, "the process never logged its HTTP port"
        assert wait_for_status(port, "/readyz", 200)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_for_status(port: int, path: str, status: int) -> bool:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
                if reply.status == status:
                    return True
        except urllib.error.HTTPError as exc:
            if exc.code == status:
                return True
        time.sleep(0.05)
    return False


def start_echo(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    """``postline echo`` (the fake stage) in ``root``, once it is ready; returns its port."""
    proc = subprocess.Popen(
        [POSTLINE, "echo"],
        cwd=root,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("POSTLINE")} | env,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        event = json.loads(line)
        if event["event"] == "http listening":
            assert wait_for_status(event["port"], "/readyz", 200)
            return proc, int(event["port"])
    raise AssertionError(f"postline echo exited {proc.wait()} before listening")


def test_a_second_owner_of_one_embedded_bus_is_refused(tmp_path: Path) -> None:
    # Issue 11: two `make run` on one data/postline.db delivered every message four times.
    env = install_fake_stage(tmp_path)
    db = tmp_path / "bus.db"
    (tmp_path / "postline.toml").write_text(f'[http]\nport = 0\n[embedded]\npath = "{db}"\n')
    first, _ = start_echo(tmp_path, env)
    try:
        second = postline("echo", cwd=tmp_path, env=env)
        assert second.returncode == 2
        assert second.stderr.splitlines()[-1] == (
            f"postline: bus unavailable: embedded bus {db} is already in use by process "
            f"{first.pid} (lock {db}.lock); two processes running stages on one file would "
            "each deliver every message. Stop the other one, or give this one its own "
            "[embedded] path"
        )
        # Clients beside the owner keep working: no lock, no consumer group.
        shown = postline("message", "show", "nosuchid", "--quiet", "0.2", cwd=tmp_path)
        assert "bus unavailable" not in shown.stderr
        assert shown.returncode == 1  # not found: it read the event log
        listed = postline("suppress", "list", cwd=tmp_path)
        assert (listed.returncode, listed.stderr) == (0, "")
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(TIMEOUT) == 0
    again, _ = start_echo(tmp_path, env)  # the lock went with the first process
    again.send_signal(signal.SIGTERM)
    assert again.wait(TIMEOUT) == 0
