"""Says why the deployment checkers' tests did not run, when they did not."""

from __future__ import annotations

import pytest

from tests.deploy.tools import missing_tools


def test_check_tools_installed() -> None:
    missing = missing_tools()
    if missing:
        pytest.skip(f"deployment check tools missing ({', '.join(missing)}): run make k8s-check")
