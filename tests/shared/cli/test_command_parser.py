"""``postline <command>`` builds the parser of that command alone, and it parses as the full one.

``shared.cli.parser.parser_for`` imports only the module (or the one stage) that registers
the command named on the command line. These tests pin that the narrow parser is the full
parser's sub-tree (same help, same parse), that every command a stage adds is declared in
``pyproject.toml`` for it, and which argv fall back to the full parser.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from shared import cli
from shared.cli.parser import (
    BUILTINS,
    COMMANDS_GROUP,
    ENTRY_POINT_GROUP,
    build_parser,
    command_named,
    parser_for,
)
from tests.shared.cli.installed import entry_point_groups, write_metadata


def run_stub(_args: argparse.Namespace) -> int:
    return 0


@pytest.fixture
def fresh_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entry points as ``pyproject.toml`` declares them (not as last installed)."""
    monkeypatch.syspath_prepend(str(write_metadata(tmp_path)))


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["bounce", "classify", "x.eml"], "bounce"),
        (["--config", "p.toml", "bounce", "classify"], "bounce"),
        (["--config=p.toml", "version"], "version"),
        (["config", "check", "--config", "p.toml"], "config"),
        ([], None),
        (["--config", "p.toml"], None),
        (["--config"], None),
        (["--help", "bounce"], None),  # argparse prints the top-level help
        (["-h"], None),
        (["--version"], None),
        (["--conf", "p.toml", "version"], None),  # an abbreviation: argparse's to judge
    ],
)
def test_command_named(argv: list[str], command: str | None) -> None:
    assert command_named(argv) == command


def tree(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], str]:
    """Every (sub-)parser's help text by its command path."""
    found = {path: parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= tree(sub, (*path, name))
    return found


def top_level(parser: argparse.ArgumentParser) -> set[str]:
    return {path[0] for path in tree(parser) if len(path) == 1}


def stage_commands() -> dict[str, str]:
    """The top-level commands each installed stage's ``add_commands`` adds -> its name."""
    found: dict[str, str] = {}
    for spec in cli.discover_stages():
        if spec.add_commands is not None:
            scratch = argparse.ArgumentParser().add_subparsers()
            spec.add_commands(scratch)
            found |= dict.fromkeys(scratch.choices, spec.name)
    return found


def test_every_stage_command_is_declared_for_its_stage() -> None:
    groups = entry_point_groups()
    stage_of_value = {value: name for name, value in groups[ENTRY_POINT_GROUP].items()}
    declared = groups[COMMANDS_GROUP]
    assert {command: stage_of_value.get(value, value) for command, value in declared.items()} == (
        stage_commands()
    )


def test_builtins_are_the_full_parsers_other_commands() -> None:
    specs = cli.discover_stages()
    runs = {spec.cli_command for spec in specs}
    full = top_level(build_parser(specs, run_stub))
    assert full == set(BUILTINS) | runs | set(stage_commands())
    assert not set(BUILTINS) & (runs | set(stage_commands()))


@pytest.mark.usefixtures("fresh_metadata")
@pytest.mark.parametrize("command", [*BUILTINS, "bounce", "suppress", "user", "dkim", "store"])
def test_one_commands_parser_is_the_full_parsers_subtree(command: str) -> None:
    full = tree(build_parser(cli.discover_stages(), run_stub))
    narrow = tree(parser_for([command], run_stub))
    built = {path[0] for path in narrow if path}
    assert command in built
    assert len(built) < len({path[0] for path in full if path})  # not the full parser
    below = {path: text for path, text in full.items() if path[:1] == (command,)}
    assert {path: narrow[path] for path in below} == below


@pytest.mark.usefixtures("fresh_metadata")
@pytest.mark.parametrize(
    "argv",
    [
        ["bounce", "classify", "a.eml", "b.eml", "--config", "k8s.toml"],
        ["--config", "p.toml", "suppress", "add", "a@example.com", "--reason", "manual"],
        ["user", "add", "app", "--domain", "example.com"],
        ["config", "check", "f.toml"],
        ["version"],
        ["tenant", "domain", "list", "acme"],
        ["run", "--deliver-to", "127.0.0.1:2525"],
    ],
)
def test_one_commands_parser_parses_as_the_full_one(argv: list[str]) -> None:
    full = build_parser(cli.discover_stages(), run_stub).parse_args(argv)
    narrow = parser_for(argv, run_stub).parse_args(argv)
    assert vars(narrow) == vars(full)


@pytest.mark.usefixtures("fresh_metadata")
@pytest.mark.parametrize("argv", [[], ["--help"], ["nosuchcommand"], ["ingest"]])
def test_anything_else_gets_the_full_parser(argv: list[str]) -> None:
    full = top_level(build_parser(cli.discover_stages(), run_stub))
    assert top_level(parser_for(argv, run_stub)) == full


@pytest.mark.usefixtures("fresh_metadata")
def test_an_unknown_command_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["bounc", "classify", "x.eml"])
    assert exited.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("postline: error: argument COMMAND: invalid choice: 'bounc'")
    for command in ("version", "gdpr", "bounce", "suppress", "ingest", "reputation-stage"):
        assert f"'{command}'" in error
