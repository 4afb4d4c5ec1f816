"""The CLI starts without the libraries only running stages and some commands need.

Every ``postline`` command builds the whole parser (every stage's spec and commands), so a
heavy import at the top of any of those modules slows every command: ``bounce classify``
took 0.37 s to start when the parser pulled in aiohttp, aiosmtpd, dkimpy and the rest.
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
    code = main(argv)
else:
    build_parser(discover_stages()).parse_args(["bounce", "classify", "any.eml"])
    code = 0
heavy = json.loads(sys.argv[2])
loaded = sorted(
    name for name in heavy if any(m == name or m.startswith(name + ".") for m in sys.modules)
)
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


def loaded_after(argv: list[str], tmp_path: Path) -> dict[str, object]:
    """Run ``argv`` through ``shared.cli.main`` (or only build and parse when empty) in a
    fresh interpreter; which of ``HEAVY`` it loaded, and the exit code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTLINE")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
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
    assert loaded_after([], tmp_path) == {"code": 0, "loaded": []}


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
    assert loaded_after(argv, tmp_path) == {"code": 0, "loaded": []}


def test_keygen_choices_are_the_signers_algorithms() -> None:
    # Spelled out in the parser so it needs no cryptography; must not drift.
    assert KEYGEN_ALGORITHMS == ALGORITHMS
