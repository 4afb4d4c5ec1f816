"""SingleFlight: concurrent callers for one key share one run of the work (pure asyncio)."""

from __future__ import annotations

import asyncio

import pytest

from shared.singleflight import SingleFlight


async def test_concurrent_callers_share_one_run_and_the_key_is_free_after() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    started = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal started
        started += 1
        await gate.wait()
        return 42

    callers = [asyncio.create_task(flights.run("k", work)) for _ in range(5)]
    await asyncio.sleep(0)
    assert "k" in flights
    gate.set()
    assert await asyncio.gather(*callers) == [42] * 5
    assert started == 1
    assert "k" not in flights
    assert await flights.run("k", work) == 42  # a later call runs the work again
    assert started == 2


async def test_a_failure_reaches_every_caller() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    gate = asyncio.Event()

    async def work() -> int:
        await gate.wait()
        raise LookupError("no answer")

    callers = [asyncio.create_task(flights.run("k", work)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert [type(r) for r in results] == [LookupError] * 3
    assert "k" not in flights


async def test_one_caller_cancelled_does_not_cancel_the_others_run() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    gate = asyncio.Event()

    async def work() -> str:
        await gate.wait()
        return "answer"

    first = asyncio.create_task(flights.run("k", work))
    second = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    gate.set()
    assert await second == "answer"


async def test_different_keys_run_apart() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    gate = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return "slow"

    async def fast() -> str:
        return "fast"

    stuck = asyncio.create_task(flights.run("a", slow))
    await asyncio.sleep(0)
    assert await flights.run("b", fast) == "fast"  # not held behind "a"
    gate.set()
    assert await stuck == "slow"
