"""What a stage gives the CLI and the runtime: its :class:`StageSpec`.

A stage package (``services/<stage>/``) exposes one :class:`StageSpec` named ``STAGE`` in
its ``main`` module and registers it under the ``postline.stages`` entry point group in
``pyproject.toml`` (and each top-level command its ``add_commands`` adds under
``postline.commands``). The CLI discovers stages through those entry points, so ``shared/``
never imports a stage, and a stage appears in ``postline`` (its own subcommand, its extra
commands, its place in ``postline run``) only once it exists.

Every ``postline`` command that names a stage imports this module, so it imports nothing
but the standard library's lightest parts: what runs a stage is ``shared.runtime.stage``.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.config import Config
    from shared.runtime.stage import Stage, StageContext


@dataclass(frozen=True)
class StageSpec:
    """A stage as the CLI and the runtime see it."""

    name: str  # "ingest", "signer", "deliverer", "bouncer"
    help: str  # one line for ``postline --help``
    create: Callable[[StageContext], Awaitable[Stage]]  # reads ctx.config.section(...)
    order: int  # position in ``postline run`` (lower starts first, stops last)
    add_commands: Callable[[argparse._SubParsersAction[Any]], None] | None = None
    check_config: Callable[[Config], object] | None = None  # for ``postline config check``
    #: Development start-up (``postline run`` only, never ``postline <stage>``): create what
    #: the stage's config points at but is missing (keys, certificates, secret files) and
    #: return lines for the start banner. Production stage commands refuse to start instead.
    prepare: Callable[[Config], list[str]] | None = None
    #: The stage's config section Struct (``[<name>]``), for ``postline config reference``.
    config_type: type | None = None
    #: The command that runs the stage alone (``postline <command>``) when it is not its
    #: name: the reputation stage runs as ``reputation-stage``, ``postline reputation``
    #: being the table its records make.
    command: str = ""

    @property
    def cli_command(self) -> str:
        """``postline <this>`` runs the stage alone."""
        return self.command or self.name
