"""Which of the tools ``make k8s-check`` installs are missing here (none: the tests run)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

CHECK_DIR = Path(__file__).resolve().parents[2] / "deploy/check"


def missing_tools() -> list[str]:
    """Python modules and commands the checkers need that are not installed."""
    missing = [
        m for m in ("yaml", "jsonschema", "promql_parser") if not importlib.util.find_spec(m)
    ]
    bindir = Path(sys.executable).parent
    missing += [
        t for t in ("kubectl", "promtool") if not ((bindir / t).exists() or shutil.which(t))
    ]
    return missing
