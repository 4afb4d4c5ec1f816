"""``SqlThread``: one store per thread, opened at the first call and closed in its thread,
and SQLite errors mapped to the bus's errors."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from shared.bus.embedded_threads import SqlThread
from shared.errors import BusFull, BusUnavailable


class Store:
    """A stand-in store that records which thread opened, used and closed it."""

    def __init__(self) -> None:
        self.opened_in = threading.get_ident()
        self.used_in: set[int] = set()
        self.closed_in: int | None = None

    def use(self, value: str) -> str:
        self.used_in.add(threading.get_ident())
        return value

    def close(self) -> None:
        self.closed_in = threading.get_ident()


async def test_the_store_lives_in_one_thread_from_first_call_to_close() -> None:
    stores: list[Store] = []

    def opener() -> Store:
        stores.append(Store())
        return stores[-1]

    thread = SqlThread("test-sql", opener)
    values = await asyncio.gather(*(thread.run(lambda s, n=n: s.use(f"v{n}")) for n in range(10)))
    assert values == [f"v{n}" for n in range(10)]
    (store,) = stores  # opened once
    assert store.used_in == {store.opened_in} and store.opened_in != threading.get_ident()
    await thread.close()
    assert store.closed_in == store.opened_in
    with pytest.raises(BusUnavailable, match="closed"):
        await thread.run(lambda s: s.use("late"))
    await thread.close()  # twice is fine


async def test_sqlite_errors_become_bus_errors_and_others_pass_through() -> None:
    thread = SqlThread("test-sql", Store)

    def fail(code: int) -> None:
        error = sqlite3.OperationalError("database or disk is full")
        error.sqlite_errorcode = code  # type: ignore[attr-defined]
        raise error

    with pytest.raises(BusFull, match="no room"):
        await thread.run(lambda s: fail(sqlite3.SQLITE_FULL))
    with pytest.raises(BusUnavailable, match="embedded bus"):
        await thread.run(lambda s: fail(sqlite3.SQLITE_IOERR))
    with pytest.raises(KeyError):
        await thread.run(lambda s: {}["missing"])
    assert await thread.run(lambda s: s.use("after")) == "after"
    await thread.close()


async def test_closing_an_unused_thread_opens_nothing() -> None:
    opened: list[Store] = []
    thread = SqlThread("test-sql", lambda: opened.append(Store()) or opened[-1])
    await thread.close()
    assert opened == []
