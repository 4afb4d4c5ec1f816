"""``WorkerThread``: calls run in order on one thread that is not the event loop's, what a
call raises reaches its caller, a call cancelled before it runs never runs, and a stopped
worker takes no more calls."""

from __future__ import annotations

import asyncio
import threading

import pytest

from shared.worker_thread import WorkerClosed, WorkerThread


async def test_calls_run_in_order_on_one_thread_off_the_loop() -> None:
    worker = WorkerThread("test-worker")
    assert not worker.started  # no thread until the first call
    seen: list[tuple[int, int]] = []

    def record(n: int) -> int:
        seen.append((n, threading.get_ident()))
        return n * n

    results = await asyncio.gather(*(worker.call(lambda n=n: record(n)) for n in range(50)))
    assert results == [n * n for n in range(50)]
    assert [n for n, _ in seen] == list(range(50))
    threads = {ident for _, ident in seen}
    assert len(threads) == 1 and threading.get_ident() not in threads
    assert worker.started
    worker.stop()


async def test_what_a_call_raises_reaches_its_caller_and_the_thread_goes_on() -> None:
    worker = WorkerThread("test-worker")
    with pytest.raises(KeyError, match="missing"):
        await worker.call(lambda: {}["missing"])
    assert await worker.call(lambda: "after") == "after"
    worker.stop()


async def test_a_call_cancelled_before_it_runs_never_runs() -> None:
    worker = WorkerThread("test-worker")
    release = threading.Event()
    ran: list[str] = []
    first = asyncio.ensure_future(worker.call(lambda: release.wait(10)))
    second = asyncio.ensure_future(worker.call(lambda: ran.append("second")))
    await asyncio.sleep(0)  # both queued; the thread is busy with the first
    second.cancel()
    release.set()
    assert await first is True
    with pytest.raises(asyncio.CancelledError):
        await second
    await worker.call(lambda: ran.append("third"))
    assert ran == ["third"]
    worker.stop()


async def test_a_stopped_worker_finishes_what_it_has_and_takes_no_more() -> None:
    worker = WorkerThread("test-worker")
    release = threading.Event()
    busy = asyncio.ensure_future(worker.call(lambda: release.wait(10)))
    queued = asyncio.ensure_future(worker.call(lambda: "queued"))
    await asyncio.sleep(0)
    worker.stop()
    worker.stop()  # twice is fine
    release.set()
    assert await busy is True
    assert await queued == "queued"  # made before stop: still run
    with pytest.raises(WorkerClosed, match="test-worker"):
        await worker.call(lambda: "late")
