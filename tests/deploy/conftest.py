"""Fixtures for the deployment checkers' tests (deploy/check).

The checkers need the tools ``make k8s-check`` installs (PyYAML, jsonschema, promql-parser,
kubectl, promtool); without them these tests skip with the reason, and ``make k8s-check``
runs them itself once the tools are there. The rendered overlays are rendered once.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.tools import CHECK_DIR, missing_tools

MISSING = missing_tools()
if MISSING:
    # The checkers import these tools at module level: collect only test_tools.py, which
    # skips with the reason.
    collect_ignore = [
        p.name for p in Path(__file__).parent.glob("test_*.py") if p.name != "test_tools.py"
    ]
else:
    sys.path.insert(0, str(CHECK_DIR))

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
