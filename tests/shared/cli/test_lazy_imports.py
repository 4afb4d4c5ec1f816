"""The CLI starts without the libraries only running stages and some commands need.

``postline --help`` builds the whole parser (every stage's spec and commands), so a heavy
import at the top of any of those modules slows it: ``bounce classify`` took 0.37 s to start
when the parser pulled in aiohttp, aiosmtpd, dkimpy and the rest. A command builds only its
own parser, so it imports no other stage and no other command's module either.
These tests pin which modules are loaded, in a fresh interpreter, never how long it takes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.signer.commands import KEYGEN_ALGORITHMS
from shared.dkimkeys import ALGORITHMS
from tests.shared.cli.installed import write_metadata

ROOT = Path(__file__).resolve().parents[3]
BOUNCE = ROOT / "tests" / "data" / "bounces" / "postfix_dsn_user_unknown.eml"

#: What only a running stage or one specific command loads.
HEAVY = (
    "aiohttp",
    "aiokafka",
    "aiosmtpd",
    "aiosmtplib",
    "asyncpg",
    "cryptography",
    "dkim",
    "dns",
    "prometheus_client",
    "redis",
    "shared.cli.reference",
)

PROBE = """
import json, sys
from shared.cli import build_parser, discover_stages, main
argv = json.loads(sys.argv[1])
if argv:
    try:
        code = main(argv)
    except SystemExit as exc:  # --help
        code = exc.code
else:
    build_parser(discover_stages()).parse_args(["bounce", "classify", "any.eml"])
    code = 0
heavy = json.loads(sys.argv[2])
loaded = sorted(
    name for name in heavy if any(m == name or m.startswith(name + ".") for m in sys.modules)
)
stages = sorted({m.split(".")[1] for m in sys.modules if m.startswith("services.")})
commands = sorted(m for m in sys.modules if m.startswith("shared.cli."))
report = {"code": code, "loaded": loaded, "stages": stages, "commands": commands}
print(json.dumps(report), file=sys.stderr)
"""

#: What every command imports to find and build its parser.
CLI_CORE = ["shared.cli.config_commands", "shared.cli.parser"]


def loaded_after(
    argv: list[str], tmp_path: Path, metadata: Path | None = None
) -> dict[str, object]:
    """Run ``argv`` through ``shared.cli.main`` (or only build and parse when empty) in a
    fresh interpreter; which of ``HEAVY``, which stages and which ``shared.cli`` modules it
    loaded, and the exit code. ``metadata``: a directory whose package metadata is found
    before the installed one's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTLINE")}
    paths = [str(ROOT), *([str(metadata)] if metadata else []), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # no ./postline.toml: the defaults
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stderr.strip().splitlines()[-1])
    return report


def test_building_the_parser_loads_no_heavy_module(tmp_path: Path) -> None:
    assert loaded_after([], tmp_path)["loaded"] == []


@pytest.mark.parametrize(
    "argv",
    [
        ["bounce", "classify", str(BOUNCE)],
        ["version"],
        ["config", "show"],
    ],
    ids=["bounce-classify", "version", "config-show"],
)
def test_light_commands_run_without_heavy_modules(argv: list[str], tmp_path: Path) -> None:
    report = loaded_after(argv, tmp_path)
    assert (report["code"], report["loaded"]) == (0, [])


@pytest.mark.parametrize(
    ("argv", "stages", "commands"),
    [
        (["bounce", "classify", str(BOUNCE)], ["bouncer"], CLI_CORE),
        (["version"], [], CLI_CORE),
        (["topics", "list", "--help"], [], [*CLI_CORE, "shared.cli.topics"]),
    ],
    ids=["bounce-classify", "version", "topics-help"],
)
def test_a_command_imports_no_other_stage_nor_command(
    argv: list[str], stages: list[str], commands: list[str], tmp_path: Path
) -> None:
    # The entry points as pyproject.toml declares them, whatever was installed last.
    report = loaded_after(argv, tmp_path, metadata=write_metadata(tmp_path / "metadata"))
    assert (report["stages"], report["commands"]) == (stages, commands)


def test_keygen_choices_are_the_signers_algorithms() -> None:
    # Spelled out in the parser so it needs no cryptography; must not drift.
    assert KEYGEN_ALGORITHMS == ALGORITHMS
