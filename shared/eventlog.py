"""Reading ``postline.events`` for people: one line per event, or one message's history.

Owns the formatting of an :class:`~shared.wire.records.Event` (a readable line; for
``--json`` the object webhooks send, ``shared.wire.eventjson``, with the id of the record's
bytes), filtering, and reading the topic through any bus (``Bus.follow``: the embedded bus
and Kafka alike). The commands that print them are in ``shared.cli.events``.

``postline message show`` reads the whole events topic from the beginning: fine on a laptop
or for an occasional look, not an index. There is no end-of-topic call on the bus, so a
history read stops once no record has come for ``quiet`` seconds (records already on the
topic come back to back, so a quiet period means the reader has caught up).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from shared.bus.base import Bus, BusMessage
from shared.errors import DecodeError
from shared.wire.eventjson import event_id, event_object
from shared.wire.records import Event, EventKind
from shared.wire.topics import EVENTS

#: Field order of a line after time, kind, message id and recipient.
_DETAIL_FIELDS = (
    "mx",
    "tls",
    "provider",
    "classification",
    "check",
    "stage",
    "tenant",
    "scope",  # reputation decisions: what they are about
    "source",  # the local address an attempt was sent from
    "by",
    "detail",
)


@dataclass(frozen=True)
class EventFilter:
    """Which events to show; empty fields match everything."""

    kinds: frozenset[EventKind] = frozenset()
    message_id: str = ""

    def matches(self, event: Event) -> bool:
        """Whether ``event`` passes the filter."""
        if self.kinds and event.kind not in self.kinds:
            return False
        return not self.message_id or event.message_id == self.message_id


@dataclass(frozen=True)
class Logged:
    """An event as read from the topic, with the id its record's bytes give it (the
    ``id`` of its JSON object: the same one webhooks send)."""

    event: Event
    id: str


@dataclass(frozen=True)
class Undecodable:
    """A record on the events topic that is not an Event (reported, then skipped)."""

    partition: int
    offset: int
    reason: str


def format_time(at: float) -> str:
    """UTC, to the millisecond: ``2026-11-27T22:30:01.123Z``."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at))
    return f"{seconds}.{int(at * 1000) % 1000:03d}Z"


def format_line(event: Event) -> str:
    """One readable line: time, kind, message id, recipient (or domain), then what is set
    of sender (message-level events), reply, attempt, mx, tls, classification, check, stage,
    tenant, by (who changed a tenant), detail."""
    parts = [
        format_time(event.at),
        f"{event.kind.value:<12}",
        event.message_id or "-",
        event.recipient or (f"domain={event.domain}" if event.domain else "-"),
    ]
    if event.sender and not event.recipient:  # message-level events: who sent it
        parts.append(f"from={event.sender}")
    if event.reply is not None:
        parts.append(f'reply="{_one_line(str(event.reply))}"')
    if event.attempt:
        parts.append(f"attempt={event.attempt}")
    for name in _DETAIL_FIELDS:
        value = getattr(event, name)
        if value:
            parts.append(f"{name}={_quoted(str(value))}")
    if event.tags:
        parts.append("tags=" + ",".join(f"{k}={v}" for k, v in sorted(event.tags.items())))
    return " ".join(parts)


def _one_line(value: str) -> str:
    return " ".join(value.split())  # one event, one line: replies may hold CRLFs


def _quoted(value: str) -> str:
    value = _one_line(value)
    return f'"{value}"' if " " in value or not value else value


def event_json(item: Logged) -> dict[str, Any]:
    """The event's JSON object, exactly as a webhook sends it (``docs/events.md``)."""
    return event_object(item.event, item.id)


def format_history(message_id: str, events: list[Event]) -> Iterator[str]:
    """``message show``: a heading, then one line per event in log order, then a summary of
    the final state per recipient."""
    yield f"message {message_id}: {len(events)} event(s)"
    for event in events:
        yield "  " + format_line(event)
    last: dict[str, Event] = {}
    for event in events:
        if event.recipient:
            last[event.recipient] = event
    for recipient, event in sorted(last.items()):
        yield f"  -> {recipient}: {event.kind.value}"


def decode(message: BusMessage) -> Logged | Undecodable:
    """The Event in a bus message with its id, or why it is not one."""
    if message.value is None:
        return Undecodable(message.partition, message.offset, "empty record")
    try:
        return Logged(EVENTS.decode(message.value), event_id(message.value))
    except DecodeError as exc:
        return Undecodable(message.partition, message.offset, str(exc))


async def tail(
    bus: Bus, selection: EventFilter, *, from_beginning: bool
) -> AsyncIterator[Logged | Undecodable]:
    """Follow the events topic (forever) and yield what passes ``selection``."""
    async for message in bus.follow(EVENTS.name, from_beginning=from_beginning):
        item = decode(message)
        if isinstance(item, Undecodable) or selection.matches(item.event):
            yield item


async def history(
    bus: Bus,
    message_id: str,
    *,
    quiet: float = 2.0,
    first_wait: float = 15.0,
    on_bad: Callable[[Undecodable], None] | None = None,
) -> list[Logged]:
    """Every event of ``message_id`` from the beginning of the topic, in log order.

    Events of one message share its key, hence one partition, so their offsets are the
    order in which the stages published them. Reading ends after ``quiet`` seconds
    without a record (``first_wait`` for the first one: a Kafka reader has to connect).
    """
    selection = EventFilter(message_id=message_id)
    return await scan(bus, selection.matches, quiet=quiet, first_wait=first_wait, on_bad=on_bad)


async def scan(
    bus: Bus,
    keep: Callable[[Event], bool],
    *,
    quiet: float = 2.0,
    first_wait: float = 15.0,
    on_bad: Callable[[Undecodable], None] | None = None,
) -> list[Logged]:
    """Every event ``keep`` accepts, from the beginning of the topic to the first ``quiet``
    seconds without a record (``first_wait`` for the first one), in log order: what
    ``message show`` and ``message search`` read when there is no store."""
    found: list[Logged] = []
    stream = bus.follow(EVENTS.name, from_beginning=True)
    wait = first_wait
    try:
        while True:
            try:
                message = await asyncio.wait_for(anext(stream), wait)
            except (TimeoutError, StopAsyncIteration):
                break
            wait = quiet
            item = decode(message)
            if isinstance(item, Undecodable):
                if on_bad is not None:
                    on_bad(item)
            elif keep(item.event):
                found.append(item)
    finally:
        with suppress(RuntimeError):  # already closed by the cancelled read
            await stream.aclose()  # type: ignore[attr-defined]
    return found


def parse_kinds(names: Collection[str]) -> frozenset[EventKind]:
    """Event kinds from their names; ``ValueError`` names the unknown one and the choices."""
    kinds = set()
    for name in names:
        try:
            kinds.add(EventKind(name.lower()))
        except ValueError:
            choices = ", ".join(kind.value for kind in EventKind)
            raise ValueError(f"unknown event kind {name!r} (one of: {choices})") from None
    return frozenset(kinds)
