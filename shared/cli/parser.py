"""The ``postline`` argument parser: built-in commands, one command per stage, stage commands.

Owns the shape of the command line and where the config file comes from, nothing that runs a
command. ``--config FILE`` is accepted before the subcommand (``postline --config F ingest``)
and after it at any depth (``postline ingest --config F``, ``postline config check --config
F``): the Kubernetes Deployments use the second form, and ``deploy/check`` runs this very
parser on their rendered args so the two can never drift apart again.

Stages are found through the ``postline.stages`` entry point group (each a ``StageSpec``), so
this module never imports a stage. A stage's ``add_commands`` hook adds sub-parsers and sets
``handler`` on each with ``parser.set_defaults(handler=fn)``, where
``fn(args: argparse.Namespace, config: Config) -> int`` (or a coroutine returning the int).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import entry_points
from typing import Any

from shared.cli import config_commands
from shared.cli.config_commands import CONFIG_ENV
from shared.cli.credential import add_credential_commands
from shared.cli.dead import add_dead_commands
from shared.cli.events import add_event_commands
from shared.cli.gdpr import add_gdpr_commands
from shared.cli.pool import add_pool_commands
from shared.cli.quarantine import add_quarantine_commands
from shared.cli.queue import add_queue_commands
from shared.cli.reputation import add_reputation_commands
from shared.cli.run import add_run_commands
from shared.cli.store_queries import add_report_command
from shared.cli.tenant import add_tenant_commands
from shared.cli.tenant_access import add_access_commands
from shared.cli.tenant_domains import add_domain_commands
from shared.cli.tenant_usage import add_usage_command
from shared.cli.topics import add_topic_commands
from shared.runtime.stage import StageSpec
from shared.version import package_version

ENTRY_POINT_GROUP = "postline.stages"
CONFIG_HELP = f"config file (default: ${CONFIG_ENV}, else ./postline.toml if present)"


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


def build_parser(
    specs: Sequence[StageSpec], run_builtin: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """The full parser: built-in commands, one per stage, and the stages' own commands.

    ``run_builtin`` is what ``run`` and ``postline <stage>`` dispatch to (the CLI's wrapper
    that maps run errors to exit codes). ``args.command`` is ``None`` when no command was
    given (the caller prints the help).
    """
    parser = argparse.ArgumentParser(prog="postline", description="Outbound SMTP relay.")
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    config_commands.add_config_commands(commands, specs)
    add_topic_commands(commands)
    add_run_commands(commands, specs, run_builtin)
    add_event_commands(commands)
    add_report_command(commands)
    add_queue_commands(commands)
    add_dead_commands(commands)
    add_quarantine_commands(commands)
    tenant = add_tenant_commands(commands)
    add_access_commands(tenant)
    add_domain_commands(tenant)
    add_usage_command(tenant)
    add_reputation_commands(commands)
    add_pool_commands(commands)
    add_credential_commands(commands)
    add_gdpr_commands(commands)
    for spec in specs:
        if spec.add_commands is not None:
            spec.add_commands(commands)
    for sub in _subparsers(parser):
        _accept_config_option(sub)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every sub-parser below ``parser``, at any depth, each once (aliases share a parser).

    argparse has no public way to walk its tree; ``_actions`` and ``_SubParsersAction`` are
    stable since Python 3.2 and are what ``format_help`` itself walks.
    """
    seen: set[int] = set()
    stack = [parser]
    while stack:
        for action in stack.pop()._actions:
            if not isinstance(action, argparse._SubParsersAction):
                continue
            for sub in action.choices.values():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    stack.append(sub)
                    yield sub


def _accept_config_option(sub: argparse.ArgumentParser) -> None:
    """Let ``--config`` follow a subcommand too; the later one wins.

    ``default=SUPPRESS``: a sub-parser that did not see ``--config`` leaves the attribute
    alone, so ``postline --config F ingest`` keeps F (argparse copies every attribute a
    sub-parser sets onto the main namespace, defaults included).
    """
    if "--config" in sub._option_string_actions:
        return  # a stage command with its own --config keeps it
    sub.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)


def parse_error(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str | None:
    """The error ``parser`` reports for ``argv`` (``None`` when it parses), without exiting.

    For checks that run the real parser on someone else's command line (deploy/check).
    """
    errors: list[str] = []

    def record(message: str) -> Any:
        errors.append(message)
        raise _ParseFailed

    try:
        for sub in [parser, *_subparsers(parser)]:
            sub.error = record  # type: ignore[method-assign]
            sub.exit = lambda status=0, message=None: record(message or f"exit {status}")  # type: ignore[method-assign]
        args = parser.parse_args(list(argv))
    except _ParseFailed:
        return errors[0]
    finally:
        for sub in [parser, *_subparsers(parser)]:
            vars(sub).pop("error", None)
            vars(sub).pop("exit", None)
    if args.command is None:
        return "no command given"
    return None


class _ParseFailed(Exception):
    """Raised by :func:`parse_error`'s stand-in for ``ArgumentParser.error``."""
