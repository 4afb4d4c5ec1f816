"""Following a topic for as long as a stage runs, through bus failures.

Compacted tables (suppressions) and command streams (``postline.control``) are read with
``Bus.follow`` by a supervised background task. A bus failure must not end that task (the
table would go stale unseen): :func:`follow_topic` logs it, waits, and follows again, from
the beginning for a table (replaying states is harmless) or from the end for commands.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from shared.bus.base import Bus, BusMessage
from shared.errors import BusError

#: How long a follower waits after a bus failure before following again.
RETRY_PAUSE = 2.0


async def follow_topic(
    bus: Bus,
    topic: str,
    apply: Callable[[BusMessage], None],
    stopping: asyncio.Event,
    log: logging.Logger,
    *,
    from_beginning: bool = True,
    restarted: Callable[[], None] | None = None,
    pause: float = RETRY_PAUSE,
) -> None:
    """Apply every record of ``topic`` until ``stopping`` or the bus closes.

    ``restarted`` is called before each follow after the first (a caller that counts
    records starts again). Returns when the bus closes or ``stopping`` is set.
    """
    first = True
    while not stopping.is_set():
        if not first and restarted is not None:
            restarted()
        first = False
        try:
            async for message in bus.follow(topic, from_beginning=from_beginning):
                apply(message)
                if stopping.is_set():
                    return
            return  # the bus closed
        except BusError as exc:
            log.warning(
                "follower failed, following again", extra={"topic": topic, "error": str(exc)}
            )
            try:
                await asyncio.wait_for(stopping.wait(), pause)
            except TimeoutError:
                continue
