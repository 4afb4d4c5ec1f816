"""What every check shares: repository paths, rendered manifests and the failure type.

A check is a function that returns a list of problems (strings naming the overlay, the
resource and what is wrong); an empty list is a pass. Owns no check itself.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy/k8s"
OVERLAYS = K8S / "overlays"
MONITORING = K8S / "components/monitoring"
DEFAULT_CRDS = REPO.parent / "shared/k8s-crds"

Manifest = dict[str, Any]


class CheckError(Exception):
    """A check could not run at all (a missing tool or path); the message says which."""


@dataclass(frozen=True)
class Rendered:
    """One overlay rendered by kustomize: its name and its documents."""

    overlay: str
    docs: list[Manifest]

    def of_kind(self, kind: str) -> list[Manifest]:
        """Documents of one kind."""
        return [doc for doc in self.docs if doc.get("kind") == kind]

    def named(self, kind: str, name: str) -> Manifest | None:
        """The document of ``kind`` called ``name``, if any."""
        for doc in self.of_kind(kind):
            if doc.get("metadata", {}).get("name") == name:
                return doc
        return None


def ref(doc: Manifest) -> str:
    """``Kind/name`` of a document, for messages."""
    return f"{doc.get('kind', '?')}/{doc.get('metadata', {}).get('name', '?')}"


def overlay_names() -> list[str]:
    """Every overlay directory (``dev``, ``prod``, ...)."""
    return sorted(p.name for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").exists())


def tool(name: str) -> str:
    """A command-line tool: in this Python's venv, its ``checkov/`` sub-venv, else on PATH."""
    bindir = Path(sys.executable).parent
    for local in (bindir / name, bindir.parent / "checkov/bin" / name):
        if local.exists():
            return str(local)
    from shutil import which  # noqa: PLC0415

    found = which(name)
    if found is None:
        raise CheckError(f"{name} is not installed (make k8s-check installs it)")
    return found


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tool, capturing its output (never raising on a non-zero exit)."""
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def render(overlay_dir: Path) -> list[Manifest]:
    """``kubectl kustomize`` one directory; raises :class:`CheckError` with kustomize's error."""
    result = run([tool("kubectl"), "kustomize", str(overlay_dir)])
    if result.returncode != 0:
        raise CheckError(f"kubectl kustomize {overlay_dir}: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_all() -> list[Rendered]:
    """Every overlay, rendered."""
    return [Rendered(name, render(OVERLAYS / name)) for name in overlay_names()]
