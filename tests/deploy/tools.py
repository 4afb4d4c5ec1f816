"""Which of the tools ``make k8s-check`` installs are missing here (none: the tests run).

A missing tool never makes a test file vanish: under ``CI=true`` each test file that needs it
fails naming the tool, elsewhere it is a visible skip with the reason (``pytest -ra`` lists it).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

CHECK_DIR = Path(__file__).resolve().parents[2] / "deploy/check"


def missing_tools() -> list[str]:
    """Python modules and commands the checkers need that are not installed."""
    missing = [
        m
        for m in ("yaml", "jsonschema", "promql_parser", "pglast")
        if not importlib.util.find_spec(m)
    ]
    bindir = Path(sys.executable).parent
    missing += [
        t for t in ("kubectl", "promtool") if not ((bindir / t).exists() or shutil.which(t))
    ]
    return missing


def require_tools(subject: str) -> None:
    """Fail (under CI) or skip (elsewhere) the calling test when a tool is missing.

    ``subject`` names what did not run (a test file), so each one is listed on its own.
    """
    missing = missing_tools()
    if not missing:
        return
    message = (
        f"{subject} not run: deployment check tools missing ({', '.join(missing)});"
        " run make k8s-check"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
