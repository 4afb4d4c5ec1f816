"""Held credentials on ``postline.control``: the records of a hold and a release, and the
table ingest refuses by.

A hold is a **state**, like a queue suspension (``shared.queue.actions``): a
``credential_hold`` :class:`~shared.wire.records.ControlAction` with target
``credential:<login>`` (key ``credential_hold|credential:<login>``) stays in the compacted
topic until a release removes it (a tombstone of that key). Every ingest replica reads the
whole table at start and follows it, so a replica that starts later refuses the same
credentials. Each hold and release is published in one atomic publish with its
``credential`` event on ``postline.events`` (who, why, the figures): the audit trail, and
what tells the reputation stage that an operator released (or held) a credential.

Written by the reputation stage (compromised-account detection) and ``postline credential``;
read by ingest and the CLI. Decides nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from shared.bus.base import Bus, BusMessage
from shared.bus.follow import follow_topic
from shared.errors import DecodeError
from shared.wire.records import ControlAction, ControlVerb, Event, EventKind
from shared.wire.topics import CONTROL, EVENTS, OutRecord

#: The target prefix of a credential on ``postline.control``.
PREFIX = "credential:"
#: ``classification`` of the ``credential`` events.
HELD = "held"
RELEASED = "released"
#: The reason a held credential's client is given (with a reference to find the event).
REFUSAL = "credential held for unusual sending activity; contact your provider"


def target(login: str) -> str:
    """The control target of a credential: ``credential:<login>``."""
    return PREFIX + login


def key(login: str) -> str:
    """The hold's key on ``postline.control`` (as ``CONTROL`` computes it)."""
    return f"{ControlVerb.CREDENTIAL_HOLD}|{target(login)}"


def event_key(login: str) -> str:
    """A ``credential`` event's key on ``postline.events``: one credential's holds and
    releases keep their order on one partition."""
    return f"credential|{login}"


def credential_event(
    login: str,
    classification: str,
    *,
    by: str,
    why: str,
    at: float,
    stage: str,
    tenant: str = "",
    figures: Mapping[str, float] | None = None,
) -> Event:
    """The ``credential`` event of a hold or a release."""
    return Event(
        kind=EventKind.CREDENTIAL,
        at=at,
        credential=login,
        tenant=tenant,
        classification=classification,
        detail=why,
        figures=dict(figures or {}),
        by=by,
        stage=stage,
        scope="credential",
    )


def hold_action(event: Event) -> OutRecord:
    """The hold a ``credential`` held event stands for, on ``postline.control``."""
    action = ControlAction(
        verb=ControlVerb.CREDENTIAL_HOLD,
        target=target(event.credential),
        at=event.at,
        by=event.by,
        why=event.detail,
    )
    return CONTROL.out(action)


def hold_records(event: Event) -> list[OutRecord]:
    """The hold action and its ``credential`` event (``classification`` held), to publish
    together."""
    return [hold_action(event), event_record(event)]


def release_records(event: Event) -> list[OutRecord]:
    """The release (the hold's tombstone) and its ``credential`` event, to publish together."""
    return [CONTROL.tombstone(key(event.credential)), event_record(event)]


def event_record(event: Event) -> OutRecord:
    """``event`` ready to publish on ``postline.events``, keyed by its credential."""
    return OutRecord(EVENTS.name, event_key(event.credential).encode(), EVENTS.encode(event))


def login_of(action: ControlAction) -> str | None:
    """The login a ``credential_hold`` action holds; ``None`` for any other action."""
    if action.verb is not ControlVerb.CREDENTIAL_HOLD or not action.target.startswith(PREFIX):
        return None
    return action.target.removeprefix(PREFIX)


async def read_holds(bus: Bus) -> dict[str, ControlAction]:
    """The holds in force now, by login; records this version cannot decode are left out."""
    await bus.ensure_topics([CONTROL.name])
    table = HeldCredentials()
    for name, value in (await bus.read_table(CONTROL.name)).items():
        table.apply(name, value)
    return table.holds()


class HeldCredentials:
    """The credentials held now, by login, as the control topic says (followed live)."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self._log = log or logging.getLogger("postline.credentials")
        self._held: dict[str, ControlAction] = {}

    def get(self, login: str) -> ControlAction | None:
        """The hold of ``login``, when it is held."""
        return self._held.get(login) if login else None

    def holds(self) -> dict[str, ControlAction]:
        """Every hold in force, by login (a copy)."""
        return dict(self._held)

    def apply(self, name: bytes | None, value: bytes | None) -> None:
        """One record of ``postline.control``: a hold sets, a tombstone of a hold's key
        releases; other verbs are not this table's."""
        if name is None:
            return
        text = name.decode("utf-8", "replace")
        prefix = f"{ControlVerb.CREDENTIAL_HOLD}|{PREFIX}"
        if not text.startswith(prefix):
            return
        if value is None:
            self._held.pop(text.removeprefix(prefix), None)
            return
        try:
            action = CONTROL.decode(value)
        except DecodeError as exc:
            self._log.warning("undecodable credential hold skipped", extra={"error": str(exc)})
            return
        login = login_of(action)
        if login is not None:
            self._held[login] = action

    async def load(self, bus: Bus) -> None:
        """Replace the table with the topic's current state."""
        self._held = {}
        for name, value in (await bus.read_table(CONTROL.name)).items():
            self.apply(name, value)

    async def follow(self, bus: Bus, stopping: asyncio.Event, log: logging.Logger) -> None:
        """Apply every record of the topic as it commits, until ``stopping`` (from the
        beginning: the records are states, replaying them is harmless)."""
        await follow_topic(bus, CONTROL.name, self._apply_message, stopping, log)

    def _apply_message(self, message: BusMessage) -> None:
        self.apply(message.key, message.value)
