"""The event loop a stage process runs on (``[runtime] event_loop``).

uvloop (libuv under asyncio's API) makes the socket and scheduling work of every stage
cheaper: a plain aiosmtpd accept loop measured +40% single-session throughput with it, and
the pipeline spends most of its non-crypto CPU there. ``asyncio`` stays selectable for
debugging and for platforms uvloop does not support; behaviour is the same on both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

EventLoopKind = Literal["uvloop", "asyncio"]


def loop_factory(kind: EventLoopKind) -> Callable[[], asyncio.AbstractEventLoop]:
    """A function creating a new event loop of ``kind``."""
    if kind == "uvloop":
        # Imported here: only processes that run stages need it, and a CLI command must
        # not pay for it.
        import uvloop  # noqa: PLC0415

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], kind: EventLoopKind) -> T:
    """Run ``main`` to completion on a new loop of ``kind`` (like ``asyncio.run``)."""
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main)
