"""Opening either bus adapter for the contract suite and its child process.

A :class:`BusTarget` names one bus (an embedded file, or a Kafka broker plus a topic prefix)
so the test process and ``txn_child.py`` open the very same bus.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from shared.bus.base import Bus, BusMessage, Consumer
from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig, KafkaConfig


@dataclass(frozen=True)
class BusTarget:
    """Where a bus lives: ``kind`` plus the embedded file or the Kafka broker and prefix."""

    kind: str
    db: Path | None = None
    bootstrap: str = ""
    prefix: str = ""

    def open(self, instance: str) -> Bus:
        """A new, not yet started bus (``instance`` is Kafka's transactional identity)."""
        if self.kind == "embedded":
            assert self.db is not None
            return EmbeddedBus(EmbeddedConfig(path=self.db))
        # Imported lazily: the embedded tests must not need aiokafka's adapter.
        kafka: Any = importlib.import_module("shared.bus.kafka")
        config = KafkaConfig(bootstrap=self.bootstrap, topic_prefix=self.prefix)
        return cast(Bus, kafka.KafkaBus(config, instance=instance))

    def argv(self) -> list[str]:
        """Command-line arguments that :meth:`from_args` reads back."""
        return [
            "--kind",
            self.kind,
            "--db",
            str(self.db or ""),
            "--bootstrap",
            self.bootstrap,
            "--prefix",
            self.prefix,
        ]

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Declare the arguments :meth:`argv` writes."""
        for name in ("--kind", "--db", "--bootstrap", "--prefix"):
            parser.add_argument(name, default="")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BusTarget:
        """The target described by parsed :meth:`argv` arguments."""
        db = Path(args.db) if args.db else None
        return cls(args.kind, db, args.bootstrap, args.prefix)


async def fetch_until(
    consumer: Consumer, done: Callable[[list[BusMessage]], bool], deadline: float = 60.0
) -> list[BusMessage]:
    """Fetch until ``done(all fetched so far)`` holds; fails after ``deadline`` seconds."""
    got: list[BusMessage] = []
    async with asyncio.timeout(deadline):
        while not done(got):
            got += await consumer.fetch(timeout=0.5)
    return got


async def fetch_count(consumer: Consumer, count: int, deadline: float = 60.0) -> list[BusMessage]:
    """Fetch until at least ``count`` messages arrived."""
    return await fetch_until(consumer, lambda got: len(got) >= count, deadline)


class Follower:
    """Collects ``bus.follow(topic)`` in a background task (cancelling ``anext`` on an async
    generator would close it, so waiting with a deadline needs a task)."""

    def __init__(self, bus: Bus, topic: str) -> None:
        self.messages: list[BusMessage] = []
        self._task = asyncio.create_task(self._collect(bus.follow(topic)))

    async def _collect(self, stream: AsyncIterator[BusMessage]) -> None:
        async for message in stream:
            self.messages.append(message)

    async def wait_until(
        self, done: Callable[[list[BusMessage]], bool], deadline: float = 60.0
    ) -> list[BusMessage]:
        """Wait until ``done(messages)`` holds; fails after ``deadline`` seconds."""
        async with asyncio.timeout(deadline):
            while not done(self.messages):
                if self._task.done():
                    self._task.result()  # raise what ended the stream
                    raise AssertionError("follow() ended")
                await asyncio.sleep(0.05)
        return list(self.messages)

    async def stop(self) -> None:
        """Stop following."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def values(messages: Sequence[BusMessage]) -> list[bytes | None]:
    """The values of ``messages``, in order."""
    return [m.value for m in messages]
