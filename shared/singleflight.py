"""One run of the same work at a time: concurrent callers asking for the same key share it.

Owns :class:`SingleFlight` (as Go's ``singleflight``): the first caller for a key starts
the work, the others await that same run, and the key is free again once it ends. Used
where a burst of connections to a new destination would otherwise ask the same question
many times at once (the deliverer's DNS lookups, MTA-STS policy fetches). Does not cache
answers: callers keep what they want to remember.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """The runs in flight, by key (one per owner; no global state)."""

    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Future[V]] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._inflight

    async def run(self, key: K, start: Callable[[], Awaitable[V]]) -> V:
        """The result of ``start()``, or of the run already under way for ``key``.

        Not a background task: every caller awaits it and its failure reaches them all.
        Each caller awaits through a shield, so one caller's cancellation never cancels the
        run the others wait for.
        """
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(start())
            self._inflight[key] = pending
            pending.add_done_callback(lambda done: self._ended(key, done))
        return await asyncio.shield(pending)

    def _ended(self, key: K, done: asyncio.Future[V]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        if not done.cancelled():
            done.exception()  # retrieved: the callers that awaited it got it already
