"""Keeping SQLite off the event loop, and group commit for the embedded bus.

Owns the threads: :class:`SqlThread` confines one connection to one thread and maps
``sqlite3.Error`` to :class:`BusUnavailable`; :class:`GroupCommitter` is the single writer
task that drains a queue of pending writes and commits everything queued in ONE SQLite
transaction (one fsync), so a hundred SMTP sessions publishing at once cost one disk flush.
It does not know the SQL (``embedded_store``) nor groups and fetching (``embedded``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from shared.bus.base import record_size
from shared.bus.embedded_store import StoreWriter, WriteItem
from shared.errors import BusError, BusFull, BusUnavailable
from shared.worker_thread import WorkerThread

T = TypeVar("T")


class _Closeable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=_Closeable)

#: A group stops growing past this many bytes, so one commit stays a bounded amount of work.
MAX_GROUP_BYTES = 128 * 1024 * 1024


class SqlThread(Generic[S]):
    """One thread owning one store object (a connection); calls run there, in order."""

    def __init__(self, name: str, opener: Callable[[], S]) -> None:
        self._thread = WorkerThread(name)
        self._opener = opener
        self._store: S | None = None  # touched only inside the thread
        self._closed = False

    async def run(self, fn: Callable[[S], T]) -> T:
        """Run ``fn(store)`` in the thread; SQLite errors become ``BusUnavailable``
        (``BusFull`` when the disk or ``embedded.max_size`` is full)."""
        if self._closed:
            raise BusUnavailable("embedded bus is closed")
        try:
            return await self._thread.call(lambda: fn(self._opened()))
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                raise BusFull(f"embedded bus: no room to write: {exc}") from exc
            raise BusUnavailable(f"embedded bus: {exc}") from exc

    def _opened(self) -> S:
        if self._store is None:
            self._store = self._opener()
        return self._store

    async def close(self) -> None:
        """Close the store in its thread and stop the thread."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._thread.started:
                await self._thread.call(self._close)
        finally:
            self._thread.stop()

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


@dataclass(eq=False)
class _Pending:
    item: WriteItem
    future: asyncio.Future[None]
    size: int
    taken: bool = False  # part of the group being committed: its outcome is no longer ours
    withdrawn: bool = False  # the caller gave up before the writer took it


class GroupCommitter:
    """The single writer task: every queued write shares the next SQLite transaction."""

    def __init__(
        self, writer: SqlThread[StoreWriter], on_commit: Callable[[set[str]], None]
    ) -> None:
        """``on_commit``: called after each commit that wrote records, with their topics."""
        self._writer = writer
        self._on_commit = on_commit
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: list[_Pending] = []

    def start(self) -> None:
        """Start the writer task."""
        self._task = asyncio.create_task(self._run(), name="embedded-bus-writer")

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None

    async def submit(self, item: WriteItem, within: float | None = None) -> None:
        """Commit ``item`` with the next group; ``BusUnavailable`` if the commit failed or
        the writer did not take it ``within`` seconds (then it is never written)."""
        if self._task is None or self._task.done():
            raise BusUnavailable("embedded bus is not running")
        size = sum(record_size(r) for r in item.records)
        pending = _Pending(item, asyncio.get_running_loop().create_future(), size)
        # A caller that timed out or was cancelled never reads the outcome; mark it read.
        pending.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.put_nowait(pending)
        try:
            await asyncio.wait_for(asyncio.shield(pending.future), within)
        except TimeoutError as exc:
            if not pending.taken:
                pending.withdrawn = True
                raise BusUnavailable(f"embedded bus: not committed within {within}s") from exc
            # Already inside a transaction being committed: wait for its true outcome
            # rather than answer "failed" for records that may be on disk a moment later.
            await pending.future
        except asyncio.CancelledError:
            if not pending.taken:
                pending.withdrawn = True
            raise

    async def _run(self) -> None:
        try:
            while True:
                first = await self._queue.get()
                if first is None:
                    return
                group, stop = self._take_group(first)
                if group:
                    await self._commit(group)
                if stop:
                    return
        finally:
            self._fail_rest()

    def _take_group(self, first: _Pending) -> tuple[list[_Pending], bool]:
        group = [first]
        size = first.size
        while size < MAX_GROUP_BYTES and not self._queue.empty():
            nxt = self._queue.get_nowait()
            if nxt is None:
                return self._live(group), True
            group.append(nxt)
            size += nxt.size
        return self._live(group), False

    def _live(self, group: list[_Pending]) -> list[_Pending]:
        live = [p for p in group if not p.withdrawn and not p.future.cancelled()]
        for pending in live:
            pending.taken = True
        self._in_flight = live
        return live

    async def _commit(self, group: list[_Pending]) -> None:
        items = [p.item for p in group]
        try:
            await self._writer.run(lambda store: store.write_group(items))
        except BusError as exc:
            for pending in group:
                _fail(pending, exc)
        else:
            for pending in group:
                if not pending.future.done():
                    pending.future.set_result(None)
            topics = {record.topic for item in items for record in item.records}
            if topics:
                self._on_commit(topics)
        self._in_flight = []

    def _fail_rest(self) -> None:
        # The writer is gone (closed or crashed): nobody may wait forever.
        stopped = BusUnavailable("embedded bus writer stopped")
        for pending in self._in_flight:
            _fail(pending, stopped)
        while not self._queue.empty():
            queued = self._queue.get_nowait()
            if queued is not None:
                _fail(queued, stopped)


def _fail(pending: _Pending, cause: BaseException) -> None:
    if not pending.future.done():
        kind = BusFull if isinstance(cause, BusFull) else BusUnavailable
        error = kind(f"embedded bus commit failed: {cause}")
        error.__cause__ = cause
        pending.future.set_exception(error)
