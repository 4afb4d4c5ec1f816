"""The quarantine for operators: list, show, release and delete what is on ``postline.quarantine``.

Ingest's content scanner writes a message whose score falls in the quarantine band as a
:class:`~shared.wire.records.Quarantined` record (key: the message id) instead of sending it.
This module is what an operator does next, for ``postline quarantine`` and the admin HTTP API
alike:

- **list / show**: the compacted topic read to its current state (:func:`load`), oldest
  first; an entry is found by its full message id or a unique prefix (:func:`resolve`).
- **release** (:func:`release`): the Submission goes to ``postline.submitted`` (the signer
  takes it as if just accepted), the entry is removed (a tombstone) and a ``quarantine``
  event says ``released``, by whom and why: ONE atomic publish, so a release interrupted
  half-way either happened whole or not at all.
- **delete** (:func:`delete`): the tombstone and a ``deleted`` event, in one publish.

A message no longer in the quarantine (released or deleted already) is not found, and
nothing is published: a release through these tools never sends a message twice. The check
is against the table as read just before the publish; two operators releasing the same
message at the very same moment could both pass it (the bus has no conditional write), as
with ``postline dead redrive``.

Why a released Submission gets a new ``received_at``: the signer derives the Deliveries'
expiry from it (``submitted_at`` + ``signer.max_message_age``, 3 days by default) and the
queue's bounce and delete actions reach mail ``submitted_at`` before them. A message held
for days would expire at its first deferral, or be swept by a ``postline queue delete
domain:...`` issued while it sat here. Releasing hands it on as if just accepted (issue 14),
so ``received_at`` becomes the release time; the id, the bytes (with ingest's trace headers,
which keep the true arrival time) and every other field stay as they were, and the release
event keeps the original ``received_at`` and the time it was quarantined in ``figures``.

It does not parse command lines or HTTP (``shared.cli.quarantine``, the bouncer's
``quarantine_api``), and it does not write entries (ingest's scanner does, with
:func:`entry_record`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from shared.bus.base import Bus
from shared.deadletters import plain
from shared.errors import DecodeError, QuarantineInvalid, QuarantineNotFound
from shared.wire.records import Event, EventKind, Quarantined, Submission, now
from shared.wire.topics import EVENTS, QUARANTINE, SUBMITTED, OutRecord

#: Shortest prefix of a message id accepted instead of the whole id (as ``postline queue``).
MIN_PREFIX = 6
#: Symbols a listing shows per message, the highest scores first.
TOP_SYMBOLS = 3
#: What a ``quarantine`` event's ``classification`` says an operator did.
RELEASED = "released"
DELETED = "deleted"
ACTIONS = frozenset({RELEASED, DELETED})


@dataclass(frozen=True)
class QuarantineEntry:
    """One message held in the quarantine (the current value of one key)."""

    id: str  # the key: the message id
    record: Quarantined | None  # None: the value does not decode (``problem`` says why)
    problem: str = ""

    @property
    def at(self) -> float:
        """When it was quarantined (0 when the record does not decode)."""
        return self.record.at if self.record is not None else 0.0

    @property
    def tenant(self) -> str:
        """The sending tenant ("" when unknown)."""
        return self.record.submission.tenant if self.record is not None else ""


@dataclass(frozen=True)
class Result:
    """What an action did with one entry."""

    id: str
    done: bool  # released / deleted; False: left in the quarantine
    why: str = ""  # what was done, or why not


def entry_record(record: Quarantined) -> OutRecord:
    """The record that puts a message in the quarantine (for ingest's scanner, in the same
    publish as its ``scanned`` event)."""
    return QUARANTINE.out(record)


async def load(bus: Bus) -> list[QuarantineEntry]:
    """Every message in the quarantine now, oldest first."""
    # Created when missing, as `postline topics create` would: an installation that never
    # quarantined anything has an empty quarantine, not an error.
    await bus.ensure_topics([QUARANTINE.name])
    entries: list[QuarantineEntry] = []
    for key, value in (await bus.read_table(QUARANTINE.name)).items():
        name = key.decode(errors="replace")
        try:
            entries.append(QuarantineEntry(name, QUARANTINE.decode(value)))
        except DecodeError as exc:
            entries.append(QuarantineEntry(name, None, str(exc)))
    return sorted(entries, key=lambda e: (e.at, e.id))


def select(entries: Iterable[QuarantineEntry], *, tenant: str = "") -> list[QuarantineEntry]:
    """The entries of ``tenant`` (every one when empty)."""
    return [entry for entry in entries if not tenant or entry.tenant == tenant]


def find(entries: Sequence[QuarantineEntry], wanted: str) -> QuarantineEntry:
    """The entry whose message id is ``wanted`` or starts with it (at least
    :data:`MIN_PREFIX` characters). ``QuarantineNotFound`` when none is,
    ``QuarantineInvalid`` when the prefix is too short or names several."""
    wanted = wanted.strip()
    for entry in entries:
        if entry.id == wanted:
            return entry
    if len(wanted) < MIN_PREFIX:
        raise QuarantineInvalid(
            f"no quarantined message is {wanted!r}; a prefix has at least {MIN_PREFIX} characters"
        )
    found = [entry for entry in entries if entry.id.startswith(wanted)]
    if len(found) > 1:
        shown = ", ".join(entry.id for entry in found[:5])
        more = " ..." if len(found) > 5 else ""
        raise QuarantineInvalid(
            f"id {wanted!r} is ambiguous: {len(found)} messages start with it ({shown}{more})"
        )
    if not found:
        raise QuarantineNotFound(
            f"no message {wanted!r} in {QUARANTINE.name} "
            "(already released or deleted, or never quarantined)"
        )
    return found[0]


def resolve(entries: Sequence[QuarantineEntry], wanted: Iterable[str]) -> list[QuarantineEntry]:
    """The entries named by ``wanted`` (ids or prefixes), each once, in the order given.
    Every name must resolve before anything is done: the first that does not raises
    (see :func:`find`), so a typo in a list of ids releases none of them."""
    chosen: dict[str, QuarantineEntry] = {}
    for name in wanted:
        entry = find(entries, name)
        chosen.setdefault(entry.id, entry)
    if not chosen:
        raise QuarantineInvalid("name at least one message id")
    return list(chosen.values())


def released_submission(record: Quarantined, at: float) -> Submission:
    """What a release hands the signer: the quarantined Submission accepted again at ``at``
    (see the module docstring for why only ``received_at`` changes)."""
    return msgspec.structs.replace(record.submission, received_at=at)


async def release(
    bus: Bus, entries: Sequence[QuarantineEntry], *, by: str, why: str = ""
) -> list[Result]:
    """Hand each entry's Submission to the signer; each is one atomic publish of the
    Submission, the entry's tombstone and the ``released`` event. An entry whose record
    does not decode stays (there is nothing to send; :func:`delete` removes it)."""
    results: list[Result] = []
    for entry in entries:
        record = entry.record
        if record is None:
            results.append(Result(entry.id, False, f"not released: {entry.problem}"))
            continue
        at = now()
        await bus.publish(
            [
                SUBMITTED.out(released_submission(record, at)),
                QUARANTINE.tombstone(entry.id),
                EVENTS.out(_event(entry, RELEASED, at=at, by=by, why=why)),
            ]
        )
        results.append(Result(entry.id, True, f"released to {SUBMITTED.name}"))
    return results


async def delete(
    bus: Bus, entries: Sequence[QuarantineEntry], *, by: str, why: str = ""
) -> list[Result]:
    """Remove each entry unsent: its tombstone and the ``deleted`` event, in one publish."""
    results: list[Result] = []
    for entry in entries:
        at = now()
        await bus.publish(
            [
                QUARANTINE.tombstone(entry.id),
                EVENTS.out(_event(entry, DELETED, at=at, by=by, why=why)),
            ]
        )
        results.append(Result(entry.id, True, "deleted"))
    return results


def _event(entry: QuarantineEntry, action: str, *, at: float, by: str, why: str) -> Event:
    record = entry.record
    if record is None:
        return Event(
            kind=EventKind.QUARANTINE,
            message_id=entry.id,
            at=at,
            classification=action,
            by=by,
            stage="admin",
            detail=why,
        )
    submission = record.submission
    return Event(
        kind=EventKind.QUARANTINE,
        message_id=submission.id,
        at=at,
        sender=submission.mail_from,
        tenant=submission.tenant,
        tags=submission.tags,
        classification=action,
        check=record.scanner,
        by=by,
        stage="admin",
        detail=why,
        figures={
            "score": record.score,
            "required": record.required,
            "quarantined_at": record.at,
            "received_at": submission.received_at,  # before the release's new one
        },
        symbols=record.symbols,
    )


def top_symbols(symbols: dict[str, float], count: int = TOP_SYMBOLS) -> list[str]:
    """The names of the ``count`` highest-scoring symbols (ties by name)."""
    ranked = sorted(symbols.items(), key=lambda item: (-item[1], item[0]))
    return [name for name, _score in ranked[:count]]


def header_block(data: bytes) -> bytes:
    """The message's header block, without the empty line that ends it."""
    ends = [i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0]
    return data[: min(ends)] if ends else data


def entry_dict(entry: QuarantineEntry) -> dict[str, Any]:
    """One entry for a listing (JSON, or the columns of a table)."""
    record = entry.record
    if record is None:
        return {"id": entry.id, "problem": entry.problem}
    submission = record.submission
    return {
        "id": entry.id,
        "at": record.at,
        "received_at": submission.received_at,
        "tenant": submission.tenant,
        "sender": submission.mail_from,
        "recipients": len(submission.rcpt_to),
        "size": len(submission.data),
        "scanner": record.scanner,
        "action": record.action,
        "score": record.score,
        "required": record.required,
        "top_symbols": top_symbols(record.symbols),
        "reference": record.reference,
    }


def detail_dict(entry: QuarantineEntry) -> dict[str, Any]:
    """One entry in full: its listing, every recipient and symbol, the client and the
    header block (as text; the bytes are ``show --raw``'s)."""
    out = entry_dict(entry)
    record = entry.record
    if record is None:
        return out
    submission = record.submission
    out |= {
        "rcpt_to": list(submission.rcpt_to),
        "symbols": dict(sorted(record.symbols.items(), key=lambda item: (-item[1], item[0]))),
        "client": plain(submission.client),
        "tags": dict(submission.tags),
        "send_at": submission.send_at,
        "headers": header_block(submission.data).decode("utf-8", errors="replace"),
    }
    return out
