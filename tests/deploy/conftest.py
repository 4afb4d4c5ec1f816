"""Fixtures for the deployment checkers' tests (deploy/check).

The checkers need the tools ``make k8s-check`` installs (PyYAML, jsonschema, promql-parser,
kubectl, promtool). The test files import the checkers at module level, so without the tools
they cannot be imported; instead of dropping them (a machine without the tools would then run
fewer tests and stay green), each such file is collected as one test that fails under
``CI=true`` naming the missing tools and is a visible skip with the reason elsewhere.
The rendered overlays are rendered once.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.tools import CHECK_DIR, missing_tools, require_tools

MISSING = missing_tools()
if not MISSING:
    sys.path.insert(0, str(CHECK_DIR))


class ToolsMissingItem(pytest.Item):
    """Stands for a test file that cannot be imported without the deployment check tools."""

    def runtest(self) -> None:
        require_tools(self.path.name)
        # The tools appeared after collection started: the file was still not run.
        pytest.fail("deployment check tools appeared mid-run: run the tests again")

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.path.name} (needs {', '.join(MISSING)})"


class ToolsMissingFile(pytest.File):
    """A test file collected as one ToolsMissingItem instead of being imported."""

    def collect(self) -> list[pytest.Item]:
        return [ToolsMissingItem.from_parent(self, name="needs_deploy_check_tools")]


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.File | None:
    """Collect a test file that needs missing tools as a failing-or-skipping stand-in."""
    # Only this directory's test files import the checkers (local/ tests the local services).
    needs_tools = (
        module_path.parent == Path(__file__).parent and module_path.name != "test_tools.py"
    )
    if MISSING and needs_tools:
        return ToolsMissingFile.from_parent(parent, path=module_path)
    return None


if not MISSING:
    from common import DEFAULT_CRDS, Rendered, render_all


@pytest.fixture(scope="session")
def rendered() -> list[Rendered]:
    """Every overlay, rendered by kubectl kustomize."""
    return render_all()


@pytest.fixture
def overlay(rendered: list[Rendered]) -> Callable[[str], Rendered]:
    """A deep copy of one rendered overlay, free to break."""

    def get(name: str) -> Rendered:
        for item in rendered:
            if item.overlay == name:
                return Rendered(item.overlay, copy.deepcopy(item.docs))
        raise KeyError(name)

    return get


@pytest.fixture(scope="session")
def crd_dir() -> Path:
    """The CRD directory beside the repository (skips when it is absent)."""
    if not DEFAULT_CRDS.is_dir():
        pytest.skip(f"{DEFAULT_CRDS} not present")
    return DEFAULT_CRDS


def find(docs: Rendered, kind: str, name: str) -> dict[str, Any]:
    """The named document (fails the test when absent)."""
    doc = docs.named(kind, name)
    assert doc is not None, f"{kind}/{name} not rendered"
    return doc
