"""The ``postline`` command line.

Owns argument parsing, finding the config file, discovering stages and turning errors into
one line on stderr and an exit code (0 ok, 1 bad config or failed stage, 2 bus unreachable
or nothing to run). Commands: ``version``, ``config check|show|reference``, ``topics
create|list``, ``run`` (every installed stage in one process) and one command per installed
stage (``shared.cli.run``), ``events tail`` and ``message show`` (``shared.cli.events``), and
the commands each stage adds.

Stages are found through the ``postline.stages`` entry point group (each a ``StageSpec``),
so this module never imports a stage. A stage's ``add_commands`` hook adds sub-parsers and
sets ``handler`` on each with ``parser.set_defaults(handler=fn)``, where
``fn(args: argparse.Namespace, config: Config) -> int`` (or a coroutine returning the int).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import platform
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from shared.cli import reference as cli_reference
from shared.cli.events import add_event_commands
from shared.cli.run import RunError, add_run_commands
from shared.cli.run import cmd_run as run_command
from shared.cli.topics import add_topic_commands
from shared.config import Config, load_config, to_builtins
from shared.errors import BusError, BusUnavailable, ConfigError
from shared.metrics import package_version
from shared.stage import StageSpec

ENTRY_POINT_GROUP = "postline.stages"
CONFIG_ENV = "POSTLINE_CONFIG"
DEFAULT_CONFIG = Path("postline.toml")

#: Key names whose values ``config show`` never prints (files naming secrets are fine).
_SECRET_WORDS = ("secret", "password", "passwd", "token", "private", "credential")

EXIT_CONFIG = 1
EXIT_UNAVAILABLE = 2


class CliError(Exception):
    """A command cannot run; the message is printed as is, with its exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        self.code = code
        super().__init__(message)


def discover_stages() -> list[StageSpec]:
    """Every installed stage, in ``postline run`` order; raises ``CliError`` on a broken one."""
    specs: list[StageSpec] = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = entry.load()
        except ImportError as exc:
            raise CliError(
                f"stage {entry.name!r} is installed but cannot be loaded: {exc}"
            ) from exc
        if not isinstance(spec, StageSpec):
            raise CliError(f"stage {entry.name!r}: entry point {entry.value} is not a StageSpec")
        specs.append(spec)
    return sorted(specs, key=lambda spec: (spec.order, spec.name))


def config_path(given: str | None) -> str | None:
    """The config file: ``--config``, else ``$POSTLINE_CONFIG``, else ./postline.toml if any."""
    if given:
        return given
    if os.environ.get(CONFIG_ENV):
        return os.environ[CONFIG_ENV]
    return str(DEFAULT_CONFIG) if DEFAULT_CONFIG.exists() else None


def build_parser(specs: Sequence[StageSpec]) -> argparse.ArgumentParser:
    """The full parser: built-in commands, one per stage, and the stages' own commands."""
    parser = argparse.ArgumentParser(prog="postline", description="Outbound SMTP relay.")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"config file (default: ${CONFIG_ENV}, else ./postline.toml if present)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("version", help="print the version").set_defaults(builtin=cmd_version)
    _add_config_commands(commands)
    add_topic_commands(commands)
    add_run_commands(commands, specs, cmd_run)
    add_event_commands(commands)
    for spec in specs:
        if spec.add_commands is not None:
            spec.add_commands(commands)
    return parser


def _add_config_commands(commands: argparse._SubParsersAction[Any]) -> None:
    config = commands.add_parser("config", help="check or show the configuration")
    sub = config.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    check = sub.add_parser("check", help="validate a config file and every stage's section")
    check.add_argument("file")
    check.set_defaults(builtin=cmd_config_check)
    sub.add_parser("show", help="print the effective configuration as JSON").set_defaults(
        builtin=cmd_config_show
    )
    sub.add_parser(
        "reference", help="print every config key with its type, default and meaning (Markdown)"
    ).set_defaults(builtin=cmd_config_reference)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``postline`` console script; returns the exit code."""
    try:
        specs = discover_stages()
        args = build_parser(specs).parse_args(argv)
        return _dispatch(args)
    except CliError as exc:
        return _fail(str(exc), exc.code)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    except BusUnavailable as exc:
        return _fail(f"bus unavailable: {exc}", EXIT_UNAVAILABLE)
    except BusError as exc:
        return _fail(f"bus error: {exc}", EXIT_UNAVAILABLE)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `postline topics list | head`: the reader left; say nothing more, like a Unix tool.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _dispatch(args: argparse.Namespace) -> int:
    builtin = getattr(args, "builtin", None)
    if builtin is not None:
        return int(builtin(args))
    handler = getattr(args, "handler", None)
    if handler is None:
        raise CliError(f"command {args.command!r} has no handler (a stage's add_commands bug)")
    result = handler(args, _load(args))
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return int(result)


async def _await(result: Any) -> Any:
    return await result


def _fail(message: str, code: int) -> int:
    print(f"postline: {message}", file=sys.stderr)
    return code


def _load(args: argparse.Namespace) -> Config:
    return load_config(config_path(args.config))


def cmd_version(_args: argparse.Namespace) -> int:
    """``postline version``."""
    print(f"postline {package_version()} (Python {platform.python_version()})")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    """``postline config check FILE``: the shared sections and every stage's section."""
    config = load_config(args.file)
    for spec in discover_stages():
        if spec.check_config is not None:
            spec.check_config(config)
    print(f"ok: {args.file}")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    """``postline config show``: the effective configuration (file plus environment)."""
    config = _load(args)
    shown = {"source": config.source, **_redacted(to_builtins(config.core))}
    print(json.dumps(shown, indent=2, sort_keys=True, default=str))
    return 0


def _redacted(value: Any, key: str = "") -> Any:
    """Stage sections may hold secrets (HMAC keys, passwords): never print their values."""
    if isinstance(value, dict):
        return {k: _redacted(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, key) for v in value]
    name = key.lower()
    if any(word in name for word in _SECRET_WORDS) and not name.endswith(("_file", "_path")):
        return "(redacted)"
    return value


def cmd_run(args: argparse.Namespace) -> int:
    """``postline run`` and ``postline <stage>`` (see ``shared.cli.run``)."""
    try:
        return run_command(args, config_path(args.config))
    except RunError as exc:
        raise CliError(str(exc), exc.code) from exc


def cmd_config_reference(_args: argparse.Namespace) -> int:
    """``postline config reference``: docs/configuration.md, generated from the structs."""
    print(cli_reference.render(discover_stages()), end="")
    return 0
