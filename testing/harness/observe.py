"""Watching a running cluster from the outside: ``postline.events`` and the suppression list.

The observer opens its own bus connection exactly as a reporting tool would: a second
``EmbeddedBus`` on the same SQLite file (another process may read it), or a ``KafkaBus``
with the cluster's topic prefix. It follows ``postline.events`` from the beginning on the
harness loop thread and keeps every Event; tests count them by kind and wait for them with
a deadline. The suppression list is read on demand (``read_table``: last value per key).

It never publishes anything.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable

from shared.bus.base import Bus
from shared.errors import DecodeError
from shared.wire.records import Event, EventKind, Suppression
from shared.wire.topics import EVENTS, SUPPRESSIONS
from testing.harness.loop import LoopThread

Predicate = Callable[[list[Event]], bool]


class EventLog:
    """Every Event the cluster published, in the order the observer read them."""

    def __init__(self, bus: Bus, loop: LoopThread) -> None:
        self._bus = bus
        self._loop = loop
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self._task: asyncio.Future[None] | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start the bus and follow the topic (on the loop thread)."""
        self._loop.call(self._bus.start())
        self._task = self._loop.spawn(self._follow())

    def close(self) -> None:
        """Stop following and close the bus."""
        if self._task is not None:
            self._task.cancel()
        self._loop.call(self._bus.close())

    async def _follow(self) -> None:
        try:
            async for message in self._bus.follow(EVENTS.name):
                if message.value is None:
                    continue
                try:
                    event = EVENTS.decode(message.value)
                except DecodeError as exc:  # a test would see the missing event; keep why
                    self.error = exc
                    continue
                with self._lock:
                    self._events.append(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # surfaced by wait() instead of a silent hang
            self.error = exc
            raise

    def events(
        self,
        message_id: str | None = None,
        recipient: str | None = None,
        kinds: Iterable[EventKind] | None = None,
    ) -> list[Event]:
        """The events so far, optionally only of one message, one recipient, some kinds."""
        wanted = set(kinds) if kinds is not None else None
        with self._lock:
            found = list(self._events)
        return [
            e
            for e in found
            if (message_id is None or e.message_id == message_id)
            and (recipient is None or e.recipient.lower() == recipient.lower())
            and (wanted is None or e.kind in wanted)
        ]

    def counts(self, message_id: str | None = None, recipient: str | None = None) -> Counter[str]:
        """How many events of each kind (by value: ``{"delivered": 2, ...}``)."""
        return Counter(e.kind.value for e in self.events(message_id, recipient))

    def wait(self, predicate: Predicate, timeout: float = 30.0, what: str = "events") -> None:
        """Poll until ``predicate(events)`` holds; fails with what was seen at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.events()
            if predicate(snapshot):
                return
            if self.error is not None:
                raise AssertionError(f"event follower failed: {self.error!r}")
            if time.monotonic() > deadline:
                seen = [(e.kind.value, e.recipient, str(e.reply or ""), e.stage) for e in snapshot]
                raise AssertionError(f"timed out waiting for {what}; saw {seen[-40:]}")
            time.sleep(0.05)

    def wait_for(
        self,
        kind: EventKind,
        count: int = 1,
        *,
        message_id: str | None = None,
        recipient: str | None = None,
        timeout: float = 30.0,
    ) -> list[Event]:
        """Wait until at least ``count`` events of ``kind`` match; returns them."""

        def enough(_: list[Event]) -> bool:
            return len(self.events(message_id, recipient, [kind])) >= count

        self.wait(enough, timeout, f"{count} {kind.value} ({message_id or ''} {recipient or ''})")
        return self.events(message_id, recipient, [kind])


def read_suppressions(bus: Bus, loop: LoopThread) -> dict[str, Suppression]:
    """The suppression list now: key (``address`` or ``scope|address``) -> record."""
    table = loop.call(bus.read_table(SUPPRESSIONS.name))
    return {key.decode(): SUPPRESSIONS.decode(value) for key, value in table.items()}
