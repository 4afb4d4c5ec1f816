"""``postline version`` and ``postline config check|show|reference``.

Owns these four commands: validating a config file with every installed stage's section,
printing the effective configuration with secrets redacted, and the Markdown reference
(docs/configuration.md). The reference's rendering is ``shared.cli.reference``'s; loading and
decoding are ``shared.config``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.cli.parser import CONFIG_ENV
from shared.errors import ConfigError
from shared.version import package_version

if TYPE_CHECKING:
    from shared.runtime.spec import StageSpec

# ``version`` and the parser (``config_path`` too) must not pay for config loading: the
# commands that load a config import ``shared.config`` when they run.

DEFAULT_CONFIG = Path("postline.toml")

#: Key names whose values ``config show`` never prints (files naming secrets are fine).
_SECRET_WORDS = ("secret", "password", "passwd", "token", "private", "credential")


def add_version_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Register ``version``; its handler takes ``(args)``."""
    commands.add_parser("version", help="print the version").set_defaults(builtin=cmd_version)


def add_config_commands(
    commands: argparse._SubParsersAction[Any], specs: Sequence[StageSpec]
) -> None:
    """Register ``config check|show|reference``; handlers take ``(args)``."""
    stages = list(specs)
    config = commands.add_parser("config", help="check or show the configuration")
    sub = config.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    check = sub.add_parser("check", help="validate a config file and every stage's section")
    check.add_argument("file", nargs="?", help="the file to check (default: --config's)")
    check.set_defaults(builtin=cmd_config_check, specs=stages)
    sub.add_parser("show", help="print the effective configuration as JSON").set_defaults(
        builtin=cmd_config_show
    )
    sub.add_parser(
        "reference", help="print every config key with its type, default and meaning (Markdown)"
    ).set_defaults(builtin=cmd_config_reference, specs=stages)


def config_path(given: str | None) -> str | None:
    """The config file: ``--config``, else ``$POSTLINE_CONFIG``, else ./postline.toml if any."""
    if given:
        return given
    if os.environ.get(CONFIG_ENV):
        return os.environ[CONFIG_ENV]
    return str(DEFAULT_CONFIG) if DEFAULT_CONFIG.exists() else None


def cmd_version(_args: argparse.Namespace) -> int:
    """``postline version`` (``postline --version`` prints the short form)."""
    print(f"postline {package_version()} (Python {platform.python_version()})")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    """``postline config check [FILE]``: the shared sections and every stage's section."""
    from shared.config import load_config  # noqa: PLC0415

    path = args.file or config_path(args.config)
    if path is None:
        raise ConfigError("config check", "", "no config file: give FILE or --config FILE")
    config = load_config(path)
    for spec in args.specs:
        if spec.check_config is not None:
            spec.check_config(config)
    print(f"ok: {path}")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    """``postline config show``: the effective configuration (file plus environment)."""
    from shared.config import load_config, to_builtins  # noqa: PLC0415

    config = load_config(config_path(args.config))
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


def cmd_config_reference(args: argparse.Namespace) -> int:
    """``postline config reference``: docs/configuration.md, generated from the structs."""
    # The reference walks every config Struct's source (ast, inspect, tokenize): loaded for
    # this command only.
    from shared.cli import reference  # noqa: PLC0415

    print(reference.render(args.specs), end="")
    return 0
