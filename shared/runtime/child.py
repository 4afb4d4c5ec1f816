"""One stage process of a ``postline run`` spread over processes (``python -m`` this module).

Started only by ``shared.runtime.children``, never by hand: it runs one stage like
``postline <stage>`` does (no prepared files, no banner), with three differences that make
it part of the run rather than a deployment of its own:

- on the embedded bus it does not take the file's owner lock (the run holds it) and watches
  for the other processes' commits; the bus still keeps each consumer group in one process;
- once its HTTP port listens (an ephemeral loopback port) it writes the port, one line, to
  the pipe ``--report-fd`` names, so the run can scrape and probe it;
- its stdin is a pipe from the run: end-of-file there (the run is gone, even killed) drains
  and stops it as SIGTERM does.

Exit codes are the runtime's (0 after a clean drain), and 1 when the config cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared.errors import ConfigError

if TYPE_CHECKING:
    from shared.config import Config
    from shared.runtime.spec import StageSpec


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments the run passes, run the stage until stopped."""
    parser = argparse.ArgumentParser(prog="python -m shared.runtime.child")
    parser.add_argument("--config", default=None)
    parser.add_argument("--report-fd", type=int, required=True)
    parser.add_argument("stage")
    args = parser.parse_args(argv)
    from shared.cli.parser import discover_stages  # noqa: PLC0415
    from shared.config import load_config  # noqa: PLC0415

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"postline: {exc}", file=sys.stderr)
        return 1
    specs = [spec for spec in discover_stages() if spec.name == args.stage]
    if not specs:
        print(f"postline: no such stage: {args.stage}", file=sys.stderr)
        return 2
    return asyncio.run(_run(specs, config, args.report_fd))


async def _run(specs: Sequence[StageSpec], config: Config, report_fd: int) -> int:
    from shared.bus.factory import open_bus  # noqa: PLC0415
    from shared.runtime.process import run_stages  # noqa: PLC0415

    stop = asyncio.Event()
    _stop_at_end_of_stdin(stop)

    def report(port: int) -> None:
        os.write(report_fd, f"{port}\n".encode())
        os.close(report_fd)

    bus = open_bus(config, owner=False, shared_file=True)
    return await run_stages(specs, config, bus=bus, stop=stop, on_listening=report)


def _stop_at_end_of_stdin(stop: asyncio.Event) -> None:
    """Set ``stop`` when stdin (the run's pipe) reaches end-of-file."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        if not data:
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)


if __name__ == "__main__":
    sys.exit(main())
