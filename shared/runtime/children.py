"""The stage processes of a ``postline run`` spread over several processes.

``postline run`` keeps some stages in its own process and starts each stage named in
``runtime.separate_processes`` as a process of its own (``python -m shared.runtime.child``),
so one run uses more than one core while staying one command. This module is the run's side:

- it starts the children with the run's environment (the ``--deliver-to`` route included)
  and their HTTP port on an ephemeral loopback port, which each child reports through an
  inherited pipe once it listens;
- it answers for them on the run's own HTTP port: their readiness joins ``/readyz`` and
  their metrics join ``/metrics``, each sample labelled with the ``process`` it came from;
- a child that exits on its own stops the whole run with a non-zero exit code (as a stage
  that crashes stops its process), and stopping the run stops every child by PID (SIGTERM,
  then SIGKILL past the drain timeout).

Each child's stdin is a pipe from the run that nothing is written to: when the run dies,
even by SIGKILL, the child reads end-of-file and drains (``shared.runtime.child``).
What keeps two processes from consuming one group is the bus (``shared.bus.embedded_lock``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass

import aiohttp

from shared.errors import PostlineError

log = logging.getLogger("postline.runtime")

#: Time a child has to import, open the bus and listen on its HTTP port.
START_TIMEOUT = 60.0
#: How long one scrape or readiness probe of a child may take.
PROBE_TIMEOUT = 5.0
#: Past the drain timeout, how long a child may still take before it is killed.
KILL_GRACE = 5.0


class StageProcessFailed(PostlineError):
    """A stage process could not start."""


@dataclass(eq=False)
class _Child:
    stage: str
    process: asyncio.subprocess.Process
    port: int = 0


class StageProcesses:
    """The children of one ``postline run``, one per stage."""

    def __init__(
        self,
        stages: Sequence[str],
        config_path: str | None,
        environ: Mapping[str, str],
    ) -> None:
        self._stages = list(stages)
        self._config_path = config_path
        self._environ = dict(environ) | {
            # Each child serves its own metrics on a free loopback port; only the run's
            # port is public.
            "POSTLINE__HTTP__HOST": "127.0.0.1",
            "POSTLINE__HTTP__PORT": "0",
        }
        self._children: list[_Child] = []
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Start every child and wait until each listens; ``StageProcessFailed`` when one
        exits first or takes longer than :data:`START_TIMEOUT` (the others keep running:
        :meth:`stop` ends them)."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT))
        for stage in self._stages:
            await self._spawn(stage)
        for child in self._children:
            log.info(
                "stage process started",
                extra={"stage": child.stage, "pid": child.process.pid, "port": child.port},
            )

    async def _spawn(self, stage: str) -> None:
        report_read, report_write = os.pipe()
        config = ["--config", self._config_path] if self._config_path else []
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "shared.runtime.child",
                "--report-fd",
                str(report_write),
                *config,
                stage,
                stdin=asyncio.subprocess.PIPE,
                env=self._environ,
                pass_fds=(report_write,),
            )
        finally:
            os.close(report_write)
        child = _Child(stage, process)
        self._children.append(child)  # from now on stop() ends it, whatever happens next
        try:
            child.port = await asyncio.wait_for(_read_port(report_read), START_TIMEOUT)
        except (TimeoutError, ValueError) as exc:
            with suppress(TimeoutError):  # an exit code says more than "no port"
                await asyncio.wait_for(process.wait(), 1.0)
            code = process.returncode
            how = f"exited with code {code}" if code is not None else "did not listen in time"
            raise StageProcessFailed(f"stage process {stage} {how}") from exc

    async def readiness(self) -> dict[str, bool]:
        """Per stage of every child: ready (its ``/readyz`` answered 200)."""
        answers = await asyncio.gather(*(self._get(child, "/readyz") for child in self._children))
        states: dict[str, bool] = {}
        for child, (status, _) in zip(self._children, answers, strict=True):
            states[child.stage] = status == 200
        return states

    async def scrape(self) -> list[tuple[str, bytes]]:
        """Each reachable child's ``/metrics`` text, with its stage's name."""
        answers = await asyncio.gather(*(self._get(child, "/metrics") for child in self._children))
        return [
            (child.stage, body)
            for child, (status, body) in zip(self._children, answers, strict=True)
            if status == 200
        ]

    async def _get(self, child: _Child, path: str) -> tuple[int, bytes]:
        if self._session is None or not child.port:
            return 0, b""
        try:
            async with self._session.get(f"http://127.0.0.1:{child.port}{path}") as reply:
                return reply.status, await reply.read()
        except (aiohttp.ClientError, TimeoutError):
            return 0, b""  # an unreachable child is not ready and shows no metrics

    async def exited(self) -> str:
        """Wait until a child exits; its stage's name."""
        waits = {asyncio.create_task(child.process.wait()): child.stage for child in self._children}
        if not waits:
            await asyncio.Event().wait()  # no child: never
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        return waits[next(iter(done))]

    async def stop(self, timeout: float) -> bool:
        """SIGTERM every child, wait ``timeout`` (+ :data:`KILL_GRACE`), SIGKILL the rest;
        ``True`` when every child exited with 0."""
        for child in self._children:
            if child.process.returncode is None:
                with suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        healthy = True
        for child in self._children:
            try:
                code = await asyncio.wait_for(child.process.wait(), timeout + KILL_GRACE)
            except TimeoutError:
                log.error("stage process did not stop, killing it", extra={"stage": child.stage})
                with suppress(ProcessLookupError):
                    child.process.kill()
                code = await child.process.wait()
            if code != 0:
                log.error("stage process failed", extra={"stage": child.stage, "code": code})
                healthy = False
        if self._session is not None:
            await self._session.close()
            self._session = None
        return healthy


async def _read_port(fd: int) -> int:
    """The port a child writes to its report pipe ``fd`` (closed here); ``ValueError`` when
    the pipe ends without one (the child exited)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    # Wrapping an open descriptor does not block; the transport owns and closes it.
    pipe = open(fd, "rb", buffering=0)  # noqa: ASYNC230, SIM115
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        line = await reader.readline()
    finally:
        transport.close()
    return int(line)
