"""A thread that runs blocking calls for the event loop, one at a time, in order.

Owns :class:`WorkerThread`, used where one SQLite connection must stay on one thread (the
embedded bus, the SQLite events store). It does what a one-worker ``ThreadPoolExecutor``
with ``run_in_executor`` does, for less CPU: a call is a put on a plain queue and one
``call_soon_threadsafe`` back, without a ``concurrent.futures.Future`` chained to the
asyncio future. Every fetch and commit of the embedded bus and every statement of the SQLite
store makes this round trip; it measured about 60 instead of 100 microseconds of CPU here.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class WorkerClosed(RuntimeError):
    """A call was made after :meth:`WorkerThread.stop`."""


class WorkerThread:
    """One thread, started at the first call; calls run there in the order they were made."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: queue.SimpleQueue[_Call[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def started(self) -> bool:
        """A call has started the thread."""
        return self._thread is not None

    async def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` run in the thread; what it raises is raised here. A call whose caller
        is cancelled before the thread reaches it is skipped."""
        if self._stopped:
            raise WorkerClosed(f"{self._name}: stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            # A daemon, so that a process leaving without stop() does not hang on it; what
            # runs here (SQLite) keeps a transaction it did not finish out of the file.
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._calls.put(_Call(fn, future, loop))
        return await future

    def stop(self) -> None:
        """Take no more calls; the thread ends after those already made."""
        if not self._stopped:
            self._stopped = True
            self._calls.put(None)

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            if call.future.cancelled():  # read across threads: at worst the call still runs
                continue
            try:
                result = call.fn()
            except BaseException as exc:  # handed to the caller, raised there
                _settle(call, _set_exception, exc)
            else:
                _settle(call, _set_result, result)


@dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    fn: Callable[[], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop


def _settle(
    call: _Call[Any], setter: Callable[[asyncio.Future[Any], Any], None], outcome: Any
) -> None:
    # A loop closed meanwhile has nobody left to tell; the thread goes on with the rest.
    with suppress(RuntimeError):
        call.loop.call_soon_threadsafe(setter, call.future, outcome)


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
