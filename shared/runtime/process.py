"""Runs stages in one process: logging, the bus, metrics, the HTTP port, signals and the drain.

Every stage process (``postline ingest``, ``postline run`` ...) is this one skeleton (Postfix's
``single_server.c`` idea): the stage supplies a :class:`~shared.runtime.stage.StageSpec`, the
runtime gives it a :class:`~shared.runtime.stage.StageContext` and runs it until a signal:

- SIGTERM / SIGINT: every stage's ``ctx.stopping`` is set (highest ``order`` first); the stages
  drain themselves, up to ``runtime.drain_timeout`` in total, then what remains is cancelled.
- SIGHUP: every stage's ``reload_hooks`` run (re-read keys, credentials, rule tables).
- A stage that crashes (or returns before it was asked to stop) stops the whole process with
  a non-zero exit code: the orchestrator restarts it, and a half-running process never hides.

A ``postline run`` spread over processes passes its stage processes
(``shared.runtime.children``) as ``companions``: they start before this process's stages, a
companion that exits stops the process like a crashed stage, they drain alongside the
stages, and the HTTP port answers for them too.

It does not parse the command line (``shared.cli``) nor choose the bus adapter
(``shared.bus.factory``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry

from shared.bus.base import Bus
from shared.config import Config
from shared.errors import BusError, ListenError
from shared.runtime.children import StageProcesses, StageProcessFailed
from shared.runtime.httpserver import HttpServer
from shared.runtime.logs import setup_logging
from shared.runtime.memory import return_large_buffers
from shared.runtime.metrics import CoreMetrics
from shared.runtime.spec import StageSpec
from shared.runtime.stage import StageContext

log = logging.getLogger("postline.runtime")

EXIT_OK = 0
EXIT_STAGE_FAILED = 1
EXIT_NO_STAGE = 2


async def run_stages(
    specs: Sequence[StageSpec],
    config: Config,
    *,
    bus: Bus | None = None,
    stop: asyncio.Event | None = None,
    configure_logging: bool = True,
    companions: StageProcesses | None = None,
    on_listening: Callable[[int], None] | None = None,
) -> int:
    """Run ``specs`` until a signal (or ``stop``) and drain; returns the process exit code.

    ``bus``: use this bus instead of the configured one (it is started and closed here too).
    ``stop``: an event that requests the same drain as SIGTERM (for embedding and tests).
    ``companions``: stage processes run with these stages (``postline run``).
    ``on_listening``: called with the HTTP port once it listens.
    Raises ``BusUnavailable`` when the bus cannot be reached at start, ``ConfigError`` when a
    stage rejects its configuration section.
    """
    if configure_logging:
        setup_logging(config.core.log)
    return_large_buffers()
    if not specs and companions is None:
        log.error("no stage to run")
        return EXIT_NO_STAGE
    if bus is None:
        from shared.bus.factory import open_bus  # noqa: PLC0415  (imports an adapter's library)

        bus = open_bus(config)
    await bus.start()
    try:
        process = _Process(specs, config, bus, companions)
        return await process.run(stop or asyncio.Event(), on_listening)
    finally:
        try:
            await bus.close()
        except BusError as exc:
            log.warning("bus close failed", extra={"error": str(exc)})


class _Process:
    """The stages of one process, their contexts and tasks."""

    def __init__(
        self,
        specs: Sequence[StageSpec],
        config: Config,
        bus: Bus,
        companions: StageProcesses | None = None,
    ) -> None:
        self.specs = sorted(specs, key=lambda spec: spec.order)
        self.companions = companions
        self.config = config
        self.registry = CollectorRegistry()
        self.metrics = CoreMetrics(self.registry)
        instance = config.core.runtime.instance or socket.gethostname()
        self.contexts = [self._context(spec.name, bus, instance) for spec in self.specs]
        self.http = HttpServer(
            config.core.http,
            self.registry,
            lambda: {ctx.name: ctx.ready for ctx in self.contexts},
            [ctx.http for ctx in self.contexts],
            companions=companions,
        )
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.reported: set[str] = set()  # stages whose end was already logged

    def _context(self, name: str, bus: Bus, instance: str) -> StageContext:
        ctx = StageContext(
            name=name,
            config=self.config,
            bus=bus,
            registry=self.registry,
            log=logging.getLogger(f"postline.{name}"),
            stopping=asyncio.Event(),
            instance=instance,
            core_metrics=self.metrics,
            task_failure=self.config.core.runtime.task_failure,
        )
        self.metrics.in_flight.labels(name).set_function(lambda: ctx.active)
        self.metrics.stage_ready.labels(name).set_function(lambda: 1.0 if ctx.ready else 0.0)
        return ctx

    async def run(
        self, stop: asyncio.Event, on_listening: Callable[[int], None] | None = None
    ) -> int:
        """Start everything, wait for a stop request or a crash, drain, report."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_stop_signal, signum, stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        try:
            try:
                await self.http.start()
            except ListenError as exc:  # one line naming the key, no traceback
                log.error("cannot listen", extra={"key": exc.key, "error": str(exc)})
                return EXIT_STAGE_FAILED
            if on_listening is not None:
                on_listening(self.http.port)
            healthy = await self._start_companions() and await self._start_stages()
            if healthy:
                healthy = await self._wait(stop)
            healthy = await self._drain() and healthy
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            await self.http.close()
        log.info("stopped", extra={"healthy": healthy})
        return EXIT_OK if healthy else EXIT_STAGE_FAILED

    def _on_stop_signal(self, signum: int, stop: asyncio.Event) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop.set()

    def _reload(self) -> None:
        log.info("reload requested", extra={"signal": "SIGHUP"})
        for ctx in self.contexts:
            for hook in ctx.reload_hooks:
                try:
                    hook()
                except Exception:  # the runtime's last resort: a bad reload keeps the old state
                    log.exception("reload hook failed", extra={"stage": ctx.name})

    async def _start_companions(self) -> bool:
        if self.companions is None:
            return True
        try:
            await self.companions.start()
        except (StageProcessFailed, OSError) as exc:  # OSError: could not even be spawned
            log.error("stage process failed to start", extra={"error": str(exc)})
            return False  # the drain stops those already started
        return True

    async def _start_stages(self) -> bool:
        """Create and start each stage in order; ``False`` when one failed to start."""
        for spec, ctx in zip(self.specs, self.contexts, strict=True):
            try:
                stage = await spec.create(ctx)
            except ListenError as exc:  # a port in use: one line naming the key
                log.error("stage failed to start", extra={"stage": spec.name, "error": str(exc)})
                return False
            except Exception:  # the runtime's last resort; ConfigError included, logged clearly
                log.exception("stage failed to start", extra={"stage": spec.name})
                return False
            self.tasks[spec.name] = asyncio.create_task(stage.run(ctx), name=f"stage:{spec.name}")
            log.info("stage started", extra={"stage": spec.name, "instance": ctx.instance})
        return True

    async def _wait(self, stop: asyncio.Event) -> bool:
        """Until a stop request (``True``) or a stage ending on its own (``False``)."""
        stopper = asyncio.create_task(stop.wait(), name="stop-request")
        fatal = [asyncio.create_task(ctx.fatal.wait(), name="fatal") for ctx in self.contexts]
        companion: asyncio.Task[str] | None = None
        if self.companions is not None:
            companion = asyncio.create_task(self.companions.exited(), name="companion-exit")
        waiters: list[asyncio.Task[object]] = [stopper, *fatal]
        if companion is not None:
            waiters.append(companion)
        try:
            done, _ = await asyncio.wait(
                [*waiters, *self.tasks.values()], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        if companion is not None and companion in done:
            log.error("a stage process exited; stopping", extra={"stage": companion.result()})
            return False
        ended = [name for name, task in self.tasks.items() if task in done]
        for name in ended:
            self._report(name, self.tasks[name], early=True)
        dead = [ctx.name for ctx in self.contexts if ctx.fatal.is_set()]
        if dead:
            log.error("a background task died; stopping the process", extra={"stages": dead})
        return not ended and not dead

    async def _drain(self) -> bool:
        """Stop stages highest order first within one drain deadline; ``False`` on a failure."""
        timeout = float(self.config.core.runtime.drain_timeout)
        deadline = time.monotonic() + timeout
        companions = None
        if self.companions is not None:  # they drain alongside this process's stages
            companions = asyncio.create_task(self.companions.stop(timeout), name="companions")
        for ctx in reversed(self.contexts):
            ctx.stopping.set()
            task = self.tasks.get(ctx.name)
            if task is not None and not task.done():
                await asyncio.wait([task], timeout=max(0.0, deadline - time.monotonic()))
        late = [name for name, task in self.tasks.items() if not task.done()]
        if late:
            log.warning("drain timed out, cancelling", extra={"stages": late})
            for name in late:
                self.tasks[name].cancel()
            await asyncio.wait([self.tasks[name] for name in late])
        for ctx in self.contexts:
            await ctx.cancel_tasks()
        healthy = companions is None or await companions
        for name, task in self.tasks.items():
            healthy = self._report(name, task, early=False) and healthy
        return healthy and not late

    def _report(self, name: str, task: asyncio.Task[None], *, early: bool) -> bool:
        """Log how a finished stage task ended (once); ``True`` when it ended cleanly."""
        if name in self.reported:
            return False
        self.reported.add(name)
        if task.cancelled():
            return False
        exc = task.exception()
        if exc is not None:
            log.error("stage crashed", extra={"stage": name}, exc_info=exc)
            return False
        if early:
            log.error("stage returned before it was asked to stop", extra={"stage": name})
            return False
        return True
