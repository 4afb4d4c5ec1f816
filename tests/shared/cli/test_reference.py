"""Every config key is documented: in the struct's source, and in
docs/configuration.md, which ``postline config reference`` generates."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared import cli
from shared.cli import reference as cli_reference

DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
SECTIONS = cli_reference.sections(cli.discover_stages())
ROWS = [row for name, struct, _ in SECTIONS for row in cli_reference.rows(struct, name)]


def test_every_stage_declares_its_section_type() -> None:
    names = {name for name, _, _ in SECTIONS}
    assert {"ingest", "signer", "deliverer", "bouncer"} <= names
    assert {"bus", "kafka", "embedded", "http", "log", "runtime"} <= names


@pytest.mark.parametrize("row", ROWS, ids=[row.path for row in ROWS])
def test_every_key_is_in_docs_configuration_md(row: cli_reference.Row) -> None:
    documented = set(re.findall(r"^\| `([^`]+)` \|", DOCS.read_text(), flags=re.MULTILINE))
    assert row.path in documented, (
        f"{row.path} is missing from {DOCS.name}: "
        "run `postline config reference > docs/configuration.md`"
    )


@pytest.mark.parametrize("row", ROWS, ids=[row.path for row in ROWS])
def test_every_key_has_a_meaning_in_its_source(row: cli_reference.Row) -> None:
    assert row.meaning, f"{row.path}: give the field a `#:` or trailing comment"


def test_reference_shows_types_defaults_and_bounds() -> None:
    by_path = {row.path: row for row in ROWS}
    assert by_path["runtime.drain_timeout"].default == '`"30s"`'
    assert by_path["ingest.limits.max_message_size"].default == '`"25MiB"`'
    assert by_path["embedded.partitions"].type == "integer (>= 1, <= 64)"
    assert by_path["log.format"].type == '"json" \\| "text"'
    assert by_path["deliverer.routes[].domains"].default == "(required)"
    assert "deliverer.domains.<name>.max_connections" in by_path


def test_docs_are_the_generated_reference() -> None:
    assert DOCS.read_text() == cli_reference.render(cli.discover_stages()), (
        "docs/configuration.md is stale: run `postline config reference > docs/configuration.md`"
    )


def test_config_reference_command_prints_the_docs() -> None:
    postline = Path(sys.executable).parent / "postline"
    result = subprocess.run(
        [str(postline), "config", "reference"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == DOCS.read_text()
