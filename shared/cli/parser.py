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

A command imports only what it needs, so that ``postline bounce classify`` or ``postline
version`` starts in a fraction of what building every command costs (importing every command
module and every stage took 0.2 s, 0.3 s without bytecode caches). ``parser_for`` reads the
top-level command off the command line (``command_named``) and builds its parser alone:

- a built-in command (``BUILTINS``) imports the one module that registers it; ``config``
  and ``run`` also find every stage (they check, document or run them all), the others none;
- a command a stage adds is declared beside the stage in ``pyproject.toml``, in the
  ``postline.commands`` entry point group (the command's name, the stage's ``StageSpec``):
  reading entry points is reading metadata, so only that stage's spec is imported.

Anything else (no command, ``--help`` first, ``postline <stage>``, an unknown command, a
stage command not declared or installed before its declaration) builds the full parser, so
``postline --help`` and argparse's "invalid choice" error list every command as always.
The parser of one command parses that command exactly as the full parser does: argparse
handles a sub-command alone once the top-level parser has chosen it.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from shared.runtime.spec import StageSpec
from shared.version import package_version

ENTRY_POINT_GROUP = "postline.stages"
#: A stage's own top-level commands: ``<command> = "services.<stage>.main:STAGE"``.
COMMANDS_GROUP = "postline.commands"
#: Where the config file comes from without ``--config`` (``config_commands.config_path``).
CONFIG_ENV = "POSTLINE_CONFIG"
CONFIG_HELP = f"config file (default: ${CONFIG_ENV}, else ./postline.toml if present)"

#: Every built-in top-level command, in ``postline --help`` order, and the function that
#: registers it (``module:function``, imported only when the command is built). A function
#: that registers several commands is called once. Each takes the sub-parsers action; those
#: in ``STAGE_COMMANDS`` take the stages too.
BUILTINS: dict[str, str] = {
    "version": "shared.cli.config_commands:add_version_command",
    "config": "shared.cli.config_commands:add_config_commands",
    "topics": "shared.cli.topics:add_topic_commands",
    "run": "shared.cli.run:add_run_commands",
    "events": "shared.cli.events:add_event_commands",
    "message": "shared.cli.events:add_event_commands",
    "report": "shared.cli.store_queries:add_report_command",
    "queue": "shared.cli.queue:add_queue_commands",
    "dead": "shared.cli.dead:add_dead_commands",
    "quarantine": "shared.cli.quarantine:add_quarantine_commands",
    "tenant": "shared.cli.tenant:add_tenant_commands",
    "reputation": "shared.cli.reputation:add_reputation_commands",
    "pool": "shared.cli.pool:add_pool_commands",
    "credential": "shared.cli.credential:add_credential_commands",
    "gdpr": "shared.cli.gdpr:add_gdpr_commands",
}
#: The built-in commands about every stage: ``config`` (check, reference) and ``run`` (which
#: also adds ``postline <stage>`` for each).
STAGE_COMMANDS = frozenset({"config", "run"})

RunBuiltin = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A command cannot run; the message is printed as is, with its exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        self.code = code
        super().__init__(message)


def discover_stages() -> list[StageSpec]:
    """Every installed stage, in ``postline run`` order; raises ``CliError`` on a broken one."""
    specs = [
        _load_spec(entry, f"stage {entry.name!r}")
        for entry in entry_points(group=ENTRY_POINT_GROUP)
    ]
    return sorted(specs, key=lambda spec: (spec.order, spec.name))


def stage_adding(command: str) -> StageSpec | None:
    """The stage that declares ``command`` in ``postline.commands``, imported alone; ``None``
    when no installed stage declares it."""
    for entry in entry_points(group=COMMANDS_GROUP, name=command):
        return _load_spec(entry, f"command {entry.name!r}: its stage")
    return None


def _load_spec(entry: EntryPoint, what: str) -> StageSpec:
    """The ``StageSpec`` an entry point names; ``CliError`` (about ``what``) when it cannot
    be loaded."""
    try:
        spec = entry.load()
    except ImportError as exc:
        raise CliError(f"{what} is installed but cannot be loaded: {exc}") from exc
    if not isinstance(spec, StageSpec):
        raise CliError(f"{what}: entry point {entry.value} is not a StageSpec")
    return spec


def command_named(argv: Sequence[str]) -> str | None:
    """The top-level command of ``argv``: its first argument after any ``--config FILE``.

    ``None`` when there is none or another option comes first (``--help``, ``--version``, an
    abbreviation argparse would accept): the caller then builds the full parser.
    """
    args = iter(argv)
    for arg in args:
        if arg == "--config":
            if next(args, None) is None:
                return None
        elif not arg.startswith("--config="):
            return None if arg.startswith("-") else arg
    return None


def parser_for(
    argv: Sequence[str],
    run_builtin: RunBuiltin,
    discover: Callable[[], list[StageSpec]] = discover_stages,
) -> argparse.ArgumentParser:
    """The parser ``main`` parses ``argv`` with: the named command's alone when it is known,
    else the full parser (see the module's docstring). ``discover`` finds every stage."""
    command = command_named(argv)
    if command in BUILTINS:
        specs = discover() if command in STAGE_COMMANDS else []
        return build_parser(specs, run_builtin, only=command)
    if command is not None and (spec := stage_adding(command)) is not None:
        parser = build_parser([spec], run_builtin, only=command)
        if command in _commands(parser).choices:
            return parser
    return build_parser(discover(), run_builtin)


def build_parser(
    specs: Sequence[StageSpec], run_builtin: RunBuiltin, only: str | None = None
) -> argparse.ArgumentParser:
    """The full parser: built-in commands, one per stage, and the stages' own commands.

    ``run_builtin`` is what ``run`` and ``postline <stage>`` dispatch to (the CLI's wrapper
    that maps run errors to exit codes). ``args.command`` is ``None`` when no command was
    given (the caller prints the help). With ``only``, just that top-level command is built
    (with whatever else its function registers): a built-in, else the commands ``specs``
    add.
    """
    parser = argparse.ArgumentParser(prog="postline", description="Outbound SMTP relay.")
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    registered: set[str] = set()
    for command, target in BUILTINS.items():
        if only in (None, command) and target not in registered:
            registered.add(target)
            _register(command, target, commands, specs, run_builtin)
    if only is None or only not in BUILTINS:
        for spec in specs:
            if spec.add_commands is not None:
                spec.add_commands(commands)
    for sub in _subparsers(parser):
        _accept_config_option(sub)
    return parser


def _register(
    command: str,
    target: str,
    commands: argparse._SubParsersAction[Any],
    specs: Sequence[StageSpec],
    run_builtin: RunBuiltin,
) -> None:
    """Import the function ``target`` names and let it add its commands."""
    module, _, name = target.partition(":")
    add = getattr(importlib.import_module(module), name)
    if command == "run":
        add(commands, specs, run_builtin)
    elif command in STAGE_COMMANDS:
        add(commands, specs)
    else:
        add(commands)


def _commands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any]:
    """The top-level sub-parsers action of a parser ``build_parser`` made."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


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
