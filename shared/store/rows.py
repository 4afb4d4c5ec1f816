"""An event as the store's rows: the ``events`` row, the ``messages`` row of an ``accepted``
event, the event id, the UTC day and hour. Pure functions, no database.

The id is BLAKE2b-128 of the record's bytes on ``postline.events``: the same bytes are the
same event, so a replay or a producer's retry maps onto the row already there. The day is
the UTC date as the integer yyyymmdd, which both dialects compare alike and PostgreSQL
range-partitions on. Addresses are lower-cased (a search by recipient must not miss
``Alice@Example.net``); ``doc`` keeps the whole event (minus its byte fields: the header
block, tenant records) as JSON for a message's history.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from shared.wire.records import Event, EventKind

#: Byte fields never stored: a message's header block (for DSNs), tenant audit copies.
_BYTES_FIELDS = frozenset({"headers", "before", "after"})
_JSON = msgspec.json.Encoder()
#: The largest value of an ``integer`` column (PostgreSQL's int4).
_INT32_MAX = 2**31 - 1

#: The ``events`` columns, in the order :func:`event_row` gives them.
EVENT_COLUMNS = (
    "day",
    "id",
    "at",
    "kind",
    "tenant",
    "message_id",
    "recipient",
    "recipient_domain",
    "sender",
    "sender_domain",
    "subject",
    "campaign",
    "tags",
    "provider",
    "mx",
    "classification",
    "reason",
    "code",
    "status",
    "detail",
    "machine",
    "agent",
    "url",
    "doc",
)

#: The ``messages`` columns, in the order :func:`message_row` gives them.
MESSAGE_COLUMNS = (
    "day",
    "message_id",
    "tenant",
    "sender",
    "sender_domain",
    "subject",
    "campaign",
    "tags",
    "at",
    "recipients",
)


@dataclass(frozen=True)
class Origin:
    """Whose message an event is about: from the event itself, else its ``messages`` row."""

    tenant: str = ""
    sender: str = ""
    campaign: str = ""
    subject: str = ""

    @property
    def sender_domain(self) -> str:
        """The sending domain (of the envelope sender)."""
        return domain_of(self.sender)


def event_id(raw: bytes) -> bytes:
    """The event's 16-byte id: BLAKE2b-128 of its record bytes."""
    return hashlib.blake2b(raw, digest_size=16).digest()


def day_of(at: float) -> int:
    """The UTC day of ``at`` (epoch seconds) as yyyymmdd."""
    d = datetime.fromtimestamp(at, UTC)
    return d.year * 10000 + d.month * 100 + d.day


def hour_of(at: float) -> int:
    """The start of the UTC hour holding ``at``, in epoch seconds."""
    return int(at // 3600) * 3600


def domain_of(address: str) -> str:
    """The lower-cased domain of ``address`` ("" without one)."""
    return address.rpartition("@")[2].lower() if "@" in address else ""


def own_origin(event: Event) -> Origin:
    """What ``event`` says itself about whose message it is."""
    return Origin(
        tenant=event.tenant,
        sender=event.sender.lower(),
        campaign=event.tags.get("campaign", ""),
        subject=event.subject,
    )


def needs_origin(event: Event) -> bool:
    """Whether the event lacks part of its origin that its message's row may give (the
    bouncer's asynchronous bounces and complaints, opens and clicks)."""
    if event.kind is EventKind.ACCEPTED or not event.message_id:
        return False
    return not (event.tenant and event.sender and event.tags.get("campaign"))


def merged(own: Origin, found: Origin | None) -> Origin:
    """``own`` with its empty parts taken from ``found`` (its message's row). The subject
    stays the event's own: it is searched on ``accepted`` events, and copying it to every
    later event of the message would only grow the table."""
    if found is None:
        return own
    return Origin(
        tenant=own.tenant or found.tenant,
        sender=own.sender or found.sender,
        campaign=own.campaign or found.campaign,
        subject=own.subject,
    )


def doc(event: Event) -> str:
    """The event as JSON: every field with a value, minus the byte fields."""
    # Every empty value ("", 0, False, None, empty collections) is falsy; kind and at never are.
    data = {k: v for k, v in msgspec.to_builtins(event).items() if v and k not in _BYTES_FIELDS}
    return _JSON.encode(data).decode()


def event_row(raw: bytes, event: Event, origin: Origin) -> tuple[Any, ...]:
    """The ``events`` row of ``event`` (columns :data:`EVENT_COLUMNS`)."""
    reply = event.reply
    recipient = event.recipient.lower()
    text = doc(event)
    row = (
        day_of(event.at),
        event_id(raw),
        event.at,
        event.kind.value,
        origin.tenant,
        event.message_id,
        recipient,
        event.domain.lower() or domain_of(recipient),
        origin.sender,
        origin.sender_domain,
        origin.subject,
        origin.campaign,
        _JSON.encode(event.tags).decode(),
        event.provider,
        event.mx,
        event.classification,
        event.reason,
        reply.code if reply and 0 <= reply.code <= 999 else 0,  # a reply code, or none
        reply.enhanced if reply else "",
        (reply.text if reply and reply.text else event.detail),
        event.machine,
        event.agent,
        event.url,
        text,
    )
    # The JSON of every string field spells a NUL \\u0000: only then is there one to clean.
    return _clean(*row) if "\\u0000" in text else row


def _clean(*values: Any) -> tuple[Any, ...]:
    """``values`` with NUL characters taken out of strings: PostgreSQL's text cannot hold
    them (SQLite could, but both dialects must store the same)."""
    return tuple(v.replace("\x00", "") if isinstance(v, str) and "\x00" in v else v for v in values)


def message_row(event: Event) -> tuple[Any, ...]:
    """The ``messages`` row of an ``accepted`` event (columns :data:`MESSAGE_COLUMNS`)."""
    origin = own_origin(event)
    return _clean(
        day_of(event.at),
        event.message_id,
        origin.tenant,
        origin.sender,
        origin.sender_domain,
        origin.subject,
        origin.campaign,
        _JSON.encode(event.tags).decode(),
        event.at,
        min(max(event.recipients, 0), _INT32_MAX),
    )
