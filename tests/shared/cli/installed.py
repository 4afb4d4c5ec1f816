"""The package metadata an install of this tree would have, for tests of what it declares.

The CLI reads entry points (``postline.stages``, ``postline.commands``) from the installed
package's metadata, which is only as new as the last ``pip install -e .``. A test of what
``pyproject.toml`` declares writes that metadata itself, on a path ahead of the installed
one (the first distribution of a name on ``sys.path`` wins).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def pyproject() -> dict[str, object]:
    """This tree's ``pyproject.toml``."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def entry_point_groups() -> dict[str, dict[str, str]]:
    """``[project.entry-points]`` of ``pyproject.toml``: group -> name -> value."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    groups: dict[str, dict[str, str]] = project["entry-points"]
    return groups


def write_metadata(root: Path) -> Path:
    """A ``postline`` dist-info under ``root`` with this tree's entry points; ``root``."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    info = root / f"postline-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: postline\nVersion: {project['version']}\n"
    )
    sections = [
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items())
        for group, entries in entry_point_groups().items()
    ]
    (info / "entry_points.txt").write_text("\n".join(sections))
    return root
