"""Dead letters for operators: list, show, redrive and purge what is on ``postline.dead``.

A consumer that cannot use a record (undecodable bytes, a poison record, a handler that kept
failing) writes a :class:`~shared.wire.records.DeadLetter` with the original key, value and
position and the reason (``shared.runtime.consume.dead_letter``) and goes on. This module is
what an operator does next, for ``postline dead`` and the admin HTTP API alike:

- **list / show**: ``postline.dead`` read to its end (:func:`load`), each dead letter with
  what became of it; ``show`` decodes the original value with its topic's record type
  (:func:`decoded`) and gives the bytes in hex when that fails.
- **redrive** (:func:`redrive`): the original key and value back on their original topic,
  after a fix. The bytes are checked with that topic's decoder first: a record that still
  does not decode is not republished; it stays dead, with the decoder's reason. A record
  dead-lettered by its handler (poison, failed) that decodes is republished: if the handler
  refuses it again, it comes back as a new dead letter with the new reason.
- **purge** (:func:`purge`): marks dead letters handled, so listings leave them out.

Why a side table: ``postline.dead`` is an append-only log kept 30 days and keyed by the
original topic (its writers, the consume loops of every stage, choose that key), so a
dead letter cannot be deleted, and a tombstone would remove every dead letter of a topic
once compacted. Rather than change the writers, what was done with each dead letter is a
:class:`~shared.wire.records.DeadLetterState` on the compacted ``postline.dead.state``, keyed
by the dead letter's partition and offset; a redrive publishes the record, its state and the
audit event in one atomic publish, so a redrive interrupted half-way redrives nothing twice.
A state whose dead letter has aged out of ``postline.dead`` is removed (a tombstone) by the
next redrive or purge, so the side table never outgrows the log.

Every action is an audited ``dead_letter`` event on ``postline.events`` naming who did it. It
does not parse command lines or HTTP (``shared.cli.dead``, the bouncer's ``dead_api``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from shared.bus.base import Bus
from shared.config import Duration
from shared.errors import DeadLetterInvalid, DeadLetterNotFound, DecodeError
from shared.wire.records import DeadLetter, DeadLetterState, Event, EventKind, Record, now
from shared.wire.topics import (
    DEAD,
    DEAD_STATE,
    EVENTS,
    WEBHOOK_RETRY_PREFIX,
    OutRecord,
    Topic,
    all_topics,
    retry_topic,
    webhook_retry_topic,
)

#: The audit events' key: every dead-letter action in order on one partition.
AUDIT_KEY = DEAD.name.encode()
#: Most bytes of an undecodable value :func:`hexdump` shows unless asked for all.
HEX_LIMIT = 4096


class State(enum.StrEnum):
    """What became of a dead letter."""

    DEAD = "dead"  # nothing yet (or a redrive was refused: the note says why)
    REDRIVEN = "redriven"  # the record is back on its topic
    PURGED = "purged"  # handled by an operator; listings leave it out


@dataclass(frozen=True)
class DeadEntry:
    """One record of ``postline.dead`` and what became of it."""

    partition: int
    offset: int
    letter: DeadLetter | None  # None: the dead letter itself does not decode
    mark: DeadLetterState | None = None
    problem: str = ""  # why ``letter`` is None

    @property
    def state(self) -> State:
        """Dead, redriven or purged."""
        return State(self.mark.state) if self.mark is not None else State.DEAD

    @property
    def key(self) -> str:
        """The key of its state on ``postline.dead.state``."""
        return f"{self.partition}:{self.offset}"

    @property
    def topic(self) -> str:
        """The original topic ("" when the dead letter does not decode)."""
        return self.letter.topic if self.letter is not None else ""

    @property
    def at(self) -> float:
        """When it was dead-lettered (0 when unknown)."""
        return self.letter.at if self.letter is not None else 0.0


@dataclass(frozen=True)
class Selection:
    """Which dead letters an action or a listing is about; empty fields match all."""

    offsets: frozenset[int] = frozenset()  # explicit ones (on partition 0, the only one)
    topic: str = ""
    since: float = 0.0  # dead-lettered at or after
    before: float = 0.0  # dead-lettered before (purge by age); 0: no bound
    handled: bool = False  # include redriven and purged ones (a listing's --all)

    def matches(self, entry: DeadEntry) -> bool:
        """Whether ``entry`` is selected."""
        if self.offsets and entry.offset not in self.offsets:
            return False
        if self.topic and entry.topic != self.topic:
            return False
        if self.since and entry.at < self.since:
            return False
        if self.before and entry.at >= self.before:
            return False
        return self.handled or bool(self.offsets) or entry.state is State.DEAD


@dataclass(frozen=True)
class Result:
    """What an action did with one dead letter."""

    offset: int
    topic: str
    done: bool  # redriven / purged; False: left as it was
    why: str = ""  # why not (or where it went)


async def load(bus: Bus) -> list[DeadEntry]:
    """Every dead letter still kept, oldest first, each with its state."""
    # Created when missing, as `postline topics create` would: an installation that never
    # dead-lettered anything has an empty list, not an error.
    await bus.ensure_topics([DEAD.name, DEAD_STATE.name])
    marks: dict[str, DeadLetterState] = {}
    for value in (await bus.read_table(DEAD_STATE.name)).values():
        try:
            mark = DEAD_STATE.decode(value)
        except DecodeError:
            continue  # a newer writer's state: the dead letter shows as dead
        marks[f"{mark.partition}:{mark.offset}"] = mark
    entries: list[DeadEntry] = []
    async for message in bus.read_to_end(DEAD.name):
        letter: DeadLetter | None = None
        problem = ""
        try:
            letter = DEAD.decode(message.value or b"")
        except DecodeError as exc:
            problem = str(exc)
        key = f"{message.partition}:{message.offset}"
        entries.append(
            DeadEntry(message.partition, message.offset, letter, marks.get(key), problem)
        )
    return sorted(entries, key=lambda e: (e.at, e.partition, e.offset))


def select(entries: Iterable[DeadEntry], selection: Selection) -> list[DeadEntry]:
    """The selected entries; raises ``DeadLetterNotFound`` naming explicit offsets that are
    not on ``postline.dead`` (never written, or aged out)."""
    entries = list(entries)
    missing = selection.offsets - {e.offset for e in entries}
    if missing:
        listed = ", ".join(str(offset) for offset in sorted(missing))
        raise DeadLetterNotFound(f"no dead letter at offset {listed} of {DEAD.name}")
    return [entry for entry in entries if selection.matches(entry)]


def selection(
    *,
    at: float,
    action: str = "",
    offsets: Iterable[int] = (),
    topic: str = "",
    since: str = "",
    older_than: str = "",
    every: bool = False,
) -> Selection:
    """The :class:`Selection` of a listing (``action`` empty: ``every`` includes handled
    ones) or an action (``redrive``, ``purge``: it must name offsets, a filter or ``every``,
    and not offsets with filters). Times are ``since`` (a duration before ``at`` or an ISO
    time) and ``older_than`` (a duration). Raises ``DeadLetterInvalid`` naming the problem."""
    chosen = frozenset(offsets)
    if any(offset < 0 for offset in chosen):
        raise DeadLetterInvalid("an offset is a number from 0")
    start = parse_since(since, at) if since else 0.0
    before = at - parse_age(older_than) if older_than else 0.0
    filtered = bool(topic or start or before or every)
    if action and not (chosen or filtered):
        raise DeadLetterInvalid(f"{action}: name offsets, a topic, a time, or all")
    if action and chosen and filtered:
        raise DeadLetterInvalid(f"{action}: offsets or filters, not both")
    return Selection(
        offsets=chosen, topic=topic, since=start, before=before, handled=every and not action
    )


def parse_since(text: str, at: float) -> float:
    """A point in time as Unix seconds: a duration before ``at`` (``"2h"``, ``"7d"``) or an
    ISO 8601 time (``2026-03-01T12:00:00Z``; without a zone it is UTC). Raises
    ``DeadLetterInvalid`` naming the text."""
    try:
        return at - Duration.parse(text.strip())
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise DeadLetterInvalid(
            f"expected a duration like '2h' or a time like 2026-03-01T12:00:00Z, got {text!r}"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def parse_age(text: str) -> float:
    """A duration (``"7d"``) in seconds; raises ``DeadLetterInvalid``."""
    try:
        age = Duration.parse(text.strip())
    except ValueError as exc:
        raise DeadLetterInvalid(str(exc)) from None
    if age < 0:
        raise DeadLetterInvalid(f"expected a duration of at least 0s, got {text!r}")
    return float(age)


def topic_of(name: str) -> Topic[Any] | None:
    """The declared topic ``name`` (its record type decodes what is redriven to it)."""
    for topic in all_topics():
        if topic.name == name:
            return topic
    if name.startswith("postline.retry."):
        return retry_topic(name.removeprefix("postline.retry."))
    if name.startswith(WEBHOOK_RETRY_PREFIX):
        return webhook_retry_topic(name.removeprefix(WEBHOOK_RETRY_PREFIX))
    return None


def decoded(entry: DeadEntry) -> tuple[Record | None, str]:
    """The original record decoded by its topic's type, or ``None`` and why not."""
    letter = entry.letter
    if letter is None:
        return None, f"the dead letter does not decode: {entry.problem}"
    if letter.value is None:
        return None, "the original value was not kept (it made the output too large)"
    topic = topic_of(letter.topic)
    if topic is None:
        return None, f"{letter.topic} is not a topic Postline declares"
    try:
        record: Record = topic.decode(letter.value)
    except DecodeError as exc:
        return None, str(exc)
    return record, ""


#: Turns a dead letter's decoded record into what a redrive publishes (a stage whose
#: records carry an age resets it, so the record is not dead again at once; its own audit
#: event may go with it).
Rewrite = Callable[[DeadLetter, Record], Sequence[OutRecord]]


async def redrive(
    bus: Bus, entries: Sequence[DeadEntry], *, by: str, rewrite: Rewrite | None = None
) -> list[Result]:
    """Put each entry's original record back on its topic, or keep it dead with the reason.

    ``rewrite`` (when given) makes the published records from the dead letter and its
    decoded record (in the same atomic publish); by default the original key and value go
    back as they were.

    Entries already redriven or purged are left alone (a second redrive would publish the
    record twice). Each entry is one atomic publish: the record, its new state and the
    audit event; a refused one publishes its ``dead`` state with the reason and the event.
    """
    results: list[Result] = []
    for entry in entries:
        if entry.state is not State.DEAD:
            results.append(_already(entry))
            continue
        record, problem = decoded(entry)
        at = now()
        if record is None or entry.letter is None:
            why = f"not redriven: {problem}"
            mark = _mark(entry, State.DEAD, at=at, by=by, note=why)
            await bus.publish([mark, _audit(entry, "redrive_refused", why, at=at, by=by)])
            results.append(Result(entry.offset, entry.topic, False, why))
            continue
        letter = entry.letter
        where = f"back on {letter.topic}"
        out = (
            list(rewrite(letter, record))
            if rewrite is not None
            else [OutRecord(letter.topic, letter.key, letter.value)]
        )
        await bus.publish(
            [
                *out,
                _mark(entry, State.REDRIVEN, at=at, by=by, note=where),
                _audit(entry, "redriven", where, at=at, by=by),
            ]
        )
        results.append(Result(entry.offset, letter.topic, True, where))
    await _forget_aged_out(bus)
    return results


async def purge(bus: Bus, entries: Sequence[DeadEntry], *, by: str, why: str = "") -> list[Result]:
    """Mark each entry purged (already purged ones are left alone), with an audit event."""
    results: list[Result] = []
    for entry in entries:
        if entry.state is State.PURGED:
            results.append(_already(entry))
            continue
        at = now()
        note = why or "purged"
        await bus.publish(
            [
                _mark(entry, State.PURGED, at=at, by=by, note=note),
                _audit(entry, "purged", note, at=at, by=by),
            ]
        )
        results.append(Result(entry.offset, entry.topic, True, note))
    await _forget_aged_out(bus)
    return results


def entry_dict(entry: DeadEntry) -> dict[str, Any]:
    """One dead letter for a listing (JSON, or the columns of a table)."""
    letter = entry.letter
    mark = entry.mark
    return {
        "offset": entry.offset,
        "partition": entry.partition,
        "topic": entry.topic,
        "source_partition": letter.partition if letter is not None else -1,
        "source_offset": letter.offset if letter is not None else -1,
        "key": _text(letter.key) if letter is not None and letter.key is not None else None,
        "group": letter.group if letter is not None else "",
        "reason": letter.reason if letter is not None else entry.problem,
        "at": entry.at,
        "size": len(letter.value) if letter is not None and letter.value is not None else 0,
        "state": str(entry.state),
        "state_at": mark.at if mark is not None else 0.0,
        "state_by": mark.by if mark is not None else "",
        "note": mark.note if mark is not None else "",
    }


def detail_dict(entry: DeadEntry, *, full: bool = False) -> dict[str, Any]:
    """One dead letter in full: its listing, the decoded value or why not with the hex."""
    out = entry_dict(entry)
    record, problem = decoded(entry)
    if record is not None:
        out["value"] = plain(record)
        out["record_type"] = type(record).__name__
    else:
        out["decode_error"] = problem
        value = entry.letter.value if entry.letter is not None else None
        out["value_hex"] = hexdump(value or b"", None if full else HEX_LIMIT)
    return out


def plain(value: Any) -> Any:
    """A decoded record as JSON-able data for people: bytes as text where they are UTF-8
    (a message, its headers), else as hex."""
    if isinstance(value, msgspec.Struct):
        return {name: plain(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, bytes):
        return _text(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    return value


def hexdump(data: bytes, limit: int | None = HEX_LIMIT) -> str:
    """``data`` as hex lines of 16 bytes with their offsets (at most ``limit`` bytes)."""
    shown = data if limit is None else data[:limit]
    lines = [
        f"{start:08x}  {shown[start : start + 16].hex(' ')}" for start in range(0, len(shown), 16)
    ]
    if len(shown) < len(data):
        lines.append(f"... {len(data) - len(shown)} more bytes")
    return "\n".join(lines)


def _text(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data.hex()


def _already(entry: DeadEntry) -> Result:
    mark = entry.mark
    assert mark is not None
    return Result(entry.offset, entry.topic, False, f"already {mark.state} by {mark.by or '-'}")


def _mark(entry: DeadEntry, state: State, *, at: float, by: str, note: str) -> OutRecord:
    return DEAD_STATE.out(
        DeadLetterState(
            partition=entry.partition,
            offset=entry.offset,
            topic=entry.topic,
            state=str(state),
            at=at,
            by=by,
            note=note,
        )
    )


def _audit(entry: DeadEntry, action: str, detail: str, *, at: float, by: str) -> OutRecord:
    letter = entry.letter
    origin = (
        f" ({letter.topic} partition {letter.partition} offset {letter.offset})"
        if letter is not None
        else ""
    )
    event = Event(
        kind=EventKind.DEAD_LETTER,
        at=at,
        classification=action,
        by=by,
        stage="admin",
        detail=f"{DEAD.name} offset {entry.offset}{origin}: {detail}",
    )
    return OutRecord(EVENTS.name, AUDIT_KEY, EVENTS.encode(event))


async def _forget_aged_out(bus: Bus) -> None:
    """Tombstones for states whose dead letter retention removed from ``postline.dead``."""
    table = await bus.read_table(DEAD_STATE.name)
    if not table:
        return
    kept = {f"{m.partition}:{m.offset}".encode() async for m in bus.read_to_end(DEAD.name)}
    stale = [key for key in table if key not in kept]
    if stale:
        await bus.publish([OutRecord(DEAD_STATE.name, key, None) for key in stale])
