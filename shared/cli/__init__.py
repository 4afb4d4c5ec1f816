"""The ``postline`` command line: ``main`` and the turning of errors into exit codes.

``main`` discovers the stages, parses (``shared.cli.parser``), dispatches, and turns every
error into one line on stderr and an exit code: 0 ok, 1 bad config or failed stage, 2 bus
unreachable or nothing to run (``postline`` alone prints the help and exits 2, as argparse
does for any other usage error: a script that forgot its command must not see success).
The commands live beside it: ``version`` and ``config`` (``config_commands``), ``topics``
(``topics``), ``run`` and one per stage (``run``), ``events tail`` and ``message show``
(``events``), ``queue ...`` (``queue``, ``queue_control``), ``dead ...`` (``dead``),
``quarantine ...`` (``quarantine``), ``tenant ...`` (``tenant``),
``reputation`` (``reputation``), ``pool ...`` (``pool``), ``credential ...``
(``credential``), ``gdpr export|erase`` (``gdpr``), and the commands each stage adds
through its ``add_commands`` hook.

``main`` builds only the parser of the command on the command line (``parser.parser_for``:
the module registering a built-in command, the one stage declaring a stage's command) and
this module imports nothing a command may not need (asyncio, config loading, ``run``), so
``postline version`` or ``postline bounce classify`` starts without the rest of Postline.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from shared.cli.config_commands import config_path
from shared.cli.parser import CliError, discover_stages, parser_for
from shared.cli.parser import build_parser as _build_parser
from shared.errors import (
    BusError,
    BusUnavailable,
    ConfigError,
    QueueError,
    TenantError,
    WebhookError,
)

if TYPE_CHECKING:
    from shared.config import Config
    from shared.runtime.spec import StageSpec

__all__ = ["CliError", "build_parser", "discover_stages", "main"]

EXIT_CONFIG = 1
EXIT_UNAVAILABLE = 2


def build_parser(specs: list[StageSpec]) -> argparse.ArgumentParser:
    """The ``postline`` parser for these stages (what ``main`` parses with)."""
    return _build_parser(specs, cmd_run)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``postline`` console script; returns the exit code."""
    try:
        given = sys.argv[1:] if argv is None else argv
        # ``discover_stages`` looked up here, at call time: tests replace it on this module.
        parser = parser_for(given, cmd_run, discover_stages)
        args = parser.parse_args(given)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_UNAVAILABLE
        return _dispatch(args)
    except CliError as exc:
        return _fail(str(exc), exc.code)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    except TenantError as exc:  # unknown tenant or key, duplicate, malformed limit: exit 1
        return _fail(str(exc), EXIT_CONFIG)
    except QueueError as exc:  # unknown message id or domain, malformed target: exit 1
        return _fail(str(exc), EXIT_CONFIG)
    except WebhookError as exc:  # unknown endpoint, malformed or refused URL: exit 1
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
    if isinstance(result, Awaitable):
        # Only the commands that talk to the bus or a database are coroutines.
        import asyncio  # noqa: PLC0415

        result = asyncio.run(_await(result))
    return int(result)


async def _await(result: Any) -> Any:
    return await result


def _fail(message: str, code: int) -> int:
    print(f"postline: {message}", file=sys.stderr)
    return code


def _load(args: argparse.Namespace) -> Config:
    from shared.config import load_config  # noqa: PLC0415

    return load_config(config_path(args.config))


def cmd_run(args: argparse.Namespace) -> int:
    """``postline run`` and ``postline <stage>`` (see ``shared.cli.run``)."""
    from shared.cli.run import RunError  # noqa: PLC0415
    from shared.cli.run import cmd_run as run_command  # noqa: PLC0415

    try:
        return run_command(args, config_path(args.config))
    except RunError as exc:
        raise CliError(str(exc), exc.code) from exc
