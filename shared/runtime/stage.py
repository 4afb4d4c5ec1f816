"""What a running stage is, and what the runtime gives it (``StageContext``).

How a stage declares itself (its ``StageSpec``, found through an entry point) is
``shared.runtime.spec``'s: the CLI reads specs without importing this module's asyncio.
``StageSpec`` is importable from here too, for stages written before the two were split.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from shared.bus.base import Bus
from shared.config import Config
from shared.runtime.http import Router
from shared.runtime.spec import StageSpec

if TYPE_CHECKING:
    # prometheus_client is only needed once a stage runs (``metrics`` creates them then).
    from prometheus_client import CollectorRegistry

    from shared.runtime.metrics import CoreMetrics

__all__ = ["Stage", "StageContext", "StageSpec"]


class Stage(Protocol):
    """A running stage."""

    async def run(self, ctx: StageContext) -> None:
        """Do the stage's work until ``ctx.stopping`` is set, then drain and return.

        Call ``ctx.set_ready()`` once the stage serves (listeners bound, groups joined).
        Wrap each unit of in-flight work in ``async with ctx.activity():`` so a drain can
        wait for it.
        """


@dataclass
class StageContext:
    """Everything a stage needs from the process it runs in. No globals."""

    name: str
    config: Config
    bus: Bus
    registry: CollectorRegistry
    log: logging.Logger
    stopping: asyncio.Event
    instance: str
    http: Router = field(default_factory=Router)  # extra endpoints on the process's HTTP port
    reload_hooks: list[Callable[[], None]] = field(default_factory=list)  # called on SIGHUP
    core_metrics: CoreMetrics | None = None  # the process's, set by the runtime; use .metrics
    #: What a dead supervised task does to the process: "exit" (drain and exit non-zero, so
    #: the orchestrator restarts it) or "unready" (keep running, /readyz answers 503).
    task_failure: str = "exit"
    #: Set when a supervised task died and ``task_failure`` is "exit"; the runtime waits on it.
    fatal: asyncio.Event = field(default_factory=asyncio.Event)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _unready: dict[str, str] = field(default_factory=dict)  # condition -> why
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _active: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._idle.set()

    @property
    def metrics(self) -> CoreMetrics:
        """The process's core metrics (shared by every stage; created on first use if unset)."""
        if self.core_metrics is None:
            from shared.runtime.metrics import CoreMetrics  # noqa: PLC0415

            self.core_metrics = CoreMetrics(self.registry)
        return self.core_metrics

    def set_ready(self) -> None:
        """The stage serves; ``/readyz`` answers 200 once every stage in the process is."""
        self._ready.set()

    @property
    def ready(self) -> bool:
        """Whether the stage serves: it said so, is not stopping, and no condition holds it."""
        return self._ready.is_set() and not self.stopping.is_set() and not self._unready

    def hold_unready(self, condition: str, why: str) -> None:
        """Answer 503 on ``/readyz`` while ``condition`` holds (e.g. the bus is failing).

        The first hold of a condition logs a warning; :meth:`release_unready` ends it.
        """
        if condition not in self._unready:
            self.log.warning(
                "not ready", extra={"stage": self.name, "condition": condition, "why": why}
            )
        self._unready[condition] = why

    def release_unready(self, condition: str) -> None:
        """``condition`` no longer holds; readiness returns once no other one does."""
        if self._unready.pop(condition, None) is not None:
            self.log.info("ready again", extra={"stage": self.name, "condition": condition})

    @property
    def unready_reasons(self) -> dict[str, str]:
        """The conditions holding readiness now, with why."""
        return dict(self._unready)

    def spawn(
        self, coro: Coroutine[Any, Any, None], *, name: str, daemon: bool = True
    ) -> asyncio.Task[None]:
        """Start a supervised background task of this stage.

        A task that raises is logged with its traceback, counted in
        ``postline_task_failures_total`` and holds readiness (``task:<name>``); with
        ``runtime.task_failure = "exit"`` the process then drains and exits non-zero so the
        orchestrator restarts it. A ``daemon`` task is meant to run until the stage stops:
        returning earlier counts as a failure too. Short-lived work (``daemon=False``) may
        return whenever it is done. The runtime cancels what is left after the drain.
        """
        task = asyncio.create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._task_ended(done, name, daemon))
        return task

    def _task_ended(self, task: asyncio.Task[None], name: str, daemon: bool) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None and (not daemon or self.stopping.is_set()):
            return
        reason = f"{type(exc).__name__}: {exc}" if exc is not None else "returned early"
        self.log.error(
            "background task died",
            extra={"stage": self.name, "task": name, "error": reason},
            exc_info=exc,
        )
        self.metrics.task_failures.labels(self.name, name).inc()
        self.hold_unready(f"task:{name}", reason)
        if self.task_failure == "exit":
            self.fatal.set()

    async def cancel_tasks(self) -> None:
        """Cancel the supervised tasks still running and wait for them (after the drain)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def wait_ready(self) -> None:
        """Wait until the stage said it serves."""
        await self._ready.wait()

    @asynccontextmanager
    async def activity(self) -> AsyncIterator[None]:
        """Mark in-flight work (an SMTP session, a delivery) that a drain waits for."""
        self._active += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    @property
    def active(self) -> int:
        """How many units of work are in flight."""
        return self._active

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no work is in flight; ``False`` when ``timeout`` ran out first."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
