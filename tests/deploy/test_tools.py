"""Says why the deployment checkers' tests did not run, when they did not (fails under CI);
and that a missing tool never makes a test file vanish from the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.tools import require_tools

ROOT = Path(__file__).resolve().parents[2]

# Runs tests/deploy in a child pytest as on a machine without promtool and jsonschema: the
# child's conftest reads missing_tools() from the module patched here before collection. The
# child leaves out this file (it would start children of its own) and local/ (no checkers).
CHILD = """
import sys
import pytest
import tests.deploy.tools as tools
tools.missing_tools = lambda: ["promtool", "jsonschema"]
sys.exit(pytest.main([
    "-q", "-rfs", "-p", "no:cacheprovider", "tests/deploy/",
    "--ignore=tests/deploy/test_tools.py", "--ignore=tests/deploy/local",
]))
"""


def test_check_tools_installed() -> None:
    require_tools("tests/deploy")


def run_without_tools(ci: str) -> tuple[int, str]:
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def tool_test_files() -> list[str]:
    here = Path(__file__).parent
    return sorted(p.name for p in here.glob("test_*.py") if p.name != "test_tools.py")


def test_under_ci_each_file_needing_a_missing_tool_fails_naming_it() -> None:
    code, output = run_without_tools("true")
    assert code == pytest.ExitCode.TESTS_FAILED, output
    for name in tool_test_files():
        assert (
            f"FAILED tests/deploy/{name}::needs_deploy_check_tools - Failed: {name} not run: "
            "deployment check tools missing (promtool, jsonschema)" in output
        ), output


def test_outside_ci_each_file_needing_a_missing_tool_is_a_visible_skip() -> None:
    code, output = run_without_tools("")
    assert code != pytest.ExitCode.TESTS_FAILED, output
    for name in tool_test_files():
        assert (
            f"{name} not run: deployment check tools missing (promtool, jsonschema);"
            " run make k8s-check" in output
        ), output
    assert "failed" not in output, output
