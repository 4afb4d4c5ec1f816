"""Checking events against the published schema (``docs/events.schema.json``), for the wire
tests, the writers' tests and the end-to-end clusters (which check every event their stages
wrote).

Two rules, both about the table in ``shared.wire.eventkinds``:

- the event's JSON object (``shared.wire.eventjson``, as a receiver parses it) is valid
  under the *strict* schema: every required field of its kind there, every type right;
- the event sets no field its kind does not declare. ``event_object`` publishes only the
  declared fields, so a writer that sets another would have it dropped without a word;
  this is where it is noticed (declare it in the table, or stop setting it).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

import jsonschema
import msgspec

from shared.wire.eventjson import event_id, event_object
from shared.wire.eventkinds import KINDS
from shared.wire.eventschema import event_schema, type_name
from shared.wire.records import Event, EventKind
from shared.wire.topics import EVENTS

#: Event fields that are never part of ``data`` (the envelope has the kind and the time).
ENVELOPE = frozenset({"schema", "kind", "at", "headers"})


@functools.cache
def validator(*, strict: bool = True) -> jsonschema.Draft202012Validator:
    """A validator of event objects (formats checked: ``timestamp`` is a date-time)."""
    schema = event_schema(strict=strict)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@functools.cache
def kind_validator(kind: EventKind) -> jsonschema.Draft202012Validator:
    """A strict validator of ``kind``'s objects alone: its errors name the field (the whole
    schema's ``oneOf`` says only that no kind matched)."""
    schema = event_schema(strict=True)
    only = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": ""}
    only["$ref"] = "#/$defs/" + type_name(kind)
    return jsonschema.Draft202012Validator(only, format_checker=jsonschema.FormatChecker())


def as_received(event: Event) -> dict[str, Any]:
    """``event``'s JSON object as a webhook receiver parses it (lists, not tuples)."""
    value: dict[str, Any] = json.loads(
        json.dumps(event_object(event, event_id(EVENTS.encode(event))))
    )
    return value


def undeclared(event: Event) -> set[str]:
    """The fields ``event`` sets (non-empty) that its kind does not declare."""
    values = msgspec.structs.asdict(event)
    set_fields = {name for name, value in values.items() if value not in ("", 0, None, (), {}, b"")}
    return set_fields - ENVELOPE - KINDS[event.kind].names()


def problems(event: Event) -> list[str]:
    """What is wrong with ``event`` under the two rules (empty: nothing)."""
    received = as_received(event)
    found = [
        f"{event.kind.value}: {error.json_path}: {error.message}"
        for error in kind_validator(event.kind).iter_errors(received)
    ]
    if not found and not validator(strict=True).is_valid(received):
        found.append(f"{event.kind.value}: valid for its kind, not under the whole schema")
    found += [
        f"{event.kind.value} sets {name}, which shared/wire/eventkinds.py does not declare "
        "for it (event_object would drop it)"
        for name in sorted(undeclared(event))
    ]
    return found


def assert_published(events: Iterable[Event]) -> None:
    """Fail naming every distinct problem of ``events`` (a cluster's whole log, say)."""
    wrong = sorted({problem for event in events for problem in problems(event)})
    assert not wrong, "events off the published schema (docs/events.md):\n" + "\n".join(wrong)
