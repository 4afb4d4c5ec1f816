"""Operators' actions reaching every running replica: publish one, follow them.

``postline auth unblock`` writes a :class:`~shared.wire.records.ControlAction` on
``postline.control``; each ingest replica follows the topic from its end and applies what it
is told, so one command reaches every pod of a stage on Kafka and the one process on the
embedded bus alike (an HTTP call would reach one pod). An unblock is a command for the
replicas running now: a replica that starts later has no lock it could lift, so it does not
replay old ones. The queue verbs on the same topic (suspend, flush, bounce, delete, throttle
cancel) are published by ``shared.queue.actions`` and read whole at start by every deliverer
(``services/deliverer/control.py``): some of them are states a new replica must honour. It
does not decide what an action means: the stage's ``apply`` does.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
from collections.abc import Callable, Container

from shared.bus.base import Bus, BusMessage
from shared.bus.follow import follow_topic
from shared.errors import DecodeError
from shared.wire.records import ControlAction, ControlVerb, now
from shared.wire.topics import CONTROL


async def publish_action(bus: Bus, verb: ControlVerb, target: str, by: str = "") -> None:
    """Publish one action (durable when this returns; raises ``BusError`` otherwise)."""
    await bus.publish([CONTROL.out(ControlAction(verb=verb, target=target, at=now(), by=by))])


def operator() -> str:
    """Who runs this command, for the action's ``by``."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


async def follow_actions(
    bus: Bus,
    verbs: Container[ControlVerb],
    apply: Callable[[ControlAction], None],
    stopping: asyncio.Event,
    log: logging.Logger,
) -> None:
    """Apply each new action of ``verbs`` until ``stopping``; a bus failure restarts the
    follow (from the end again) after a pause. Undecodable records are logged and skipped:
    the topic is shared by every stage and a newer writer may know more verbs."""

    def on_message(message: BusMessage) -> None:
        if message.value is not None:
            _apply(message.value, verbs, apply, log)

    await follow_topic(bus, CONTROL.name, on_message, stopping, log, from_beginning=False)


def _apply(
    value: bytes,
    verbs: Container[ControlVerb],
    apply: Callable[[ControlAction], None],
    log: logging.Logger,
) -> None:
    try:
        action = CONTROL.decode(value)
    except DecodeError as exc:
        log.warning("control action ignored", extra={"error": str(exc)})
        return
    if action.verb in verbs:
        log.info(
            "control action",
            extra={"verb": str(action.verb), "target": action.target, "by": action.by},
        )
        apply(action)
