"""``postline run`` (every stage in one process) and ``postline <stage>`` (one stage).

``run`` is the development and single-host entry: before starting it calls each stage's
``prepare`` hook (create a missing certificate, DKIM key or secret file) and prints a banner
saying where to send mail, where metrics are and how to stop. ``--deliver-to HOST:PORT``
routes all mail to one smarthost (a local capture server on a machine without internet).
A stage command (``postline ingest``) prepares nothing and prints no banner: in production
a missing file must stop the start with an error naming the key, not be made up.

``run`` starts the stages ``runtime.separate_processes`` names as processes of their own
(``shared.runtime.children``) and the others in its own process, so one command uses every
core; it keeps the embedded file's owner lock, and the bus keeps each consumer group in one
process.

This module does not run stages itself (``shared.runtime.process``) nor know any stage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from shared.bus.embedded_lock import OwnerLock
from shared.config import Config, load_config
from shared.errors import ConfigError
from shared.runtime.spec import StageSpec
from shared.version import package_version

#: The environment variable ``--deliver-to`` sets for the run (an ordinary config override).
ROUTES_ENV = "POSTLINE__DELIVERER__ROUTES"


#: Said when ``run`` without a config file fails: the defaults are production-shaped.
NO_CONFIG_HINT = (
    "no config file was given: for a development start on this machine use `make run`\n"
    "(= postline --config deploy/local/postline.toml run), or see docs/configuration.md"
)


class RunError(Exception):
    """``run`` cannot start; the message is printed as is, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        self.code = code
        super().__init__(message)


def add_run_commands(
    commands: argparse._SubParsersAction[Any],
    specs: Sequence[StageSpec],
    builtin: Callable[[argparse.Namespace], int],
) -> None:
    """``run`` and one command per stage, dispatched to ``builtin`` (the CLI's wrapper of
    :func:`cmd_run`, which maps errors to exit codes)."""
    run = commands.add_parser(
        "run",
        help="run every installed stage in one process (creates missing dev keys and certs)",
    )
    run.add_argument(
        "--deliver-to",
        metavar="HOST:PORT",
        type=_hostport,
        help="relay all mail to this SMTP server instead of the recipients' MX hosts "
        "(plaintext or opportunistic STARTTLS, no certificate check)",
    )
    run.set_defaults(builtin=builtin, specs=list(specs), prepare=True)
    for spec in specs:
        one = commands.add_parser(spec.cli_command, help=spec.help)
        one.set_defaults(builtin=builtin, specs=[spec], prepare=False, deliver_to=None)


def _hostport(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return value


def deliver_to_environment(target: str | None, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment with a catch-all smarthost route to ``target`` (when given).

    A capture server offers no trustworthy certificate (usually no STARTTLS at all), so the
    route uses opportunistic TLS without verification; it replaces any configured routes.
    """
    env = dict(environ)
    if target:
        route = f'domains = ["*"], host = "{target}", tls = "opportunistic"'
        env[ROUTES_ENV] = f"[{{{route}, verify_certs = false}}]"
    return env


def cmd_run(args: argparse.Namespace, path: str | None) -> int:
    """Check every stage's section, prepare (``run`` only), print the banner, run."""
    specs: list[StageSpec] = args.specs
    if not specs:
        raise RunError("no stage is installed; nothing to run", 2)
    environ = deliver_to_environment(args.deliver_to, os.environ)
    config = load_config(path, environ)
    _refuse_a_second_owner(config)
    apart = separate_stages(specs, config) if args.prepare else []
    try:
        lines = _prepare_and_check(specs, config, prepare=args.prepare)
    except ConfigError as exc:
        if args.prepare and path is None:
            raise RunError(f"{exc}\n{NO_CONFIG_HINT}", 1) from exc
        raise
    if args.prepare:
        print_banner(config, specs, lines, sys.stdout, apart)
    # The runtime (aiohttp, prometheus_client) loads only when a stage really runs, so that
    # every other command starts without it.
    from shared.bus.factory import open_bus  # noqa: PLC0415
    from shared.runtime.children import StageProcesses  # noqa: PLC0415
    from shared.runtime.process import run_stages  # noqa: PLC0415

    if not apart:
        return asyncio.run(run_stages(specs, config))
    own = [spec for spec in specs if spec not in apart]
    companions = StageProcesses([spec.name for spec in apart], path, environ)
    bus = open_bus(config, shared_file=True)
    return asyncio.run(run_stages(own, config, bus=bus, companions=companions))


def separate_stages(specs: Sequence[StageSpec], config: Config) -> list[StageSpec]:
    """The stages ``runtime.separate_processes`` puts in processes of their own;
    ``ConfigError`` naming the key for a name that is not an installed stage."""
    names = config.core.runtime.separate_processes
    known = {spec.name for spec in specs}
    for name in names:
        if name not in known:
            raise ConfigError(
                config.source,
                "runtime.separate_processes",
                f"{name!r} is not an installed stage (installed: {', '.join(sorted(known))})",
            )
    return [spec for spec in specs if spec.name in names]


def _refuse_a_second_owner(config: Config) -> None:
    """Fail at once, before preparing files and printing a banner, when another process
    owns the embedded database; the bus takes the lock for good when it starts (raises
    ``BusUnavailable`` naming the holder)."""
    if config.core.bus.kind != "embedded":
        return
    database = config.core.embedded.path
    if database.parent.is_dir():  # no directory yet: nobody has opened it
        OwnerLock.acquire(database).release()


def _prepare_and_check(specs: Sequence[StageSpec], config: Config, *, prepare: bool) -> list[str]:
    """Run the ``prepare`` hooks (``run`` only), then every stage's config check."""
    lines: list[str] = []
    if prepare:
        for spec in specs:
            if spec.prepare is not None:
                lines += spec.prepare(config)
    for spec in specs:
        if spec.check_config is not None:
            spec.check_config(config)
    return lines


def print_banner(
    config: Config,
    specs: Sequence[StageSpec],
    lines: list[str],
    out: TextIO,
    apart: Sequence[StageSpec] = (),
) -> None:
    """The start banner: stages, the stages' own lines, metrics, events and how to stop."""
    core = config.core
    where = f"embedded bus {core.embedded.path}" if core.bus.kind == "embedded" else "Kafka"
    cli = "postline" + ("" if config.source == "(defaults)" else f" --config {config.source}")
    http = f"http://{core.http.host}:{core.http.port}"
    rule = "-" * 72
    text = [
        rule,
        f"Postline {package_version()}: {', '.join(s.name for s in specs)} on {where}",
        *_processes_line(apart),
        *lines,
        f"metrics {http}/metrics, health {http}/healthz and {http}/readyz",
        f"follow what happens: {cli} events tail",
        f"one message:         {cli} message show ID",
        "stop: Ctrl-C (in-flight work drains first)",
        *_path_hint(),
        rule,
    ]
    out.write("\n".join(text) + "\n")
    out.flush()


def _processes_line(apart: Sequence[StageSpec]) -> list[str]:
    if not apart:
        return []
    names = ", ".join(spec.name for spec in apart)
    return [f"{names}: a process each (runtime.separate_processes); the rest in this one"]


def _path_hint() -> list[str]:
    """Where ``postline`` is, when it is not on ``$PATH`` (``make run`` uses .venv/bin)."""
    script = os.path.abspath(sys.argv[0])
    if os.path.basename(script) != "postline":
        return []
    directory = os.path.dirname(script)
    if directory in os.environ.get("PATH", "").split(os.pathsep):
        return []
    shown = os.path.relpath(script)
    activate = os.path.join(os.path.dirname(shown), "activate")
    return [f"(postline is {shown}; '. {activate}' puts it on your PATH)"]
