"""The published event schema (``shared.wire.eventschema``), the table it comes from
(``shared.wire.eventkinds``) and the checked-in ``docs/events.schema.json`` and
``docs/events.md``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shared.cli import eventdocs
from shared.wire import eventschema
from shared.wire.eventexamples import EXAMPLES
from shared.wire.eventkinds import FIELD_DOCS, KINDS
from shared.wire.records import Event, EventKind
from testing import eventschema as check

DOCS = Path(__file__).resolve().parents[3] / "docs"
ALL_KINDS = list(EventKind)


def test_the_checked_in_schema_is_the_generated_one() -> None:
    assert (DOCS / "events.schema.json").read_text() == eventschema.render(), (
        "docs/events.schema.json is stale: run `postline events schema > docs/events.schema.json`"
    )


def test_the_checked_in_page_is_the_generated_one() -> None:
    assert (DOCS / "events.md").read_text() == eventdocs.render(), (
        "docs/events.md is stale: run `postline events schema --markdown > docs/events.md`"
    )


def test_every_kind_has_its_fields_declared_and_an_example() -> None:
    assert set(KINDS) == set(EventKind)
    assert set(EXAMPLES) == set(EventKind)
    fields = {f.name for f in msgspec.structs.fields(Event)}
    published = fields - check.ENVELOPE
    assert set(FIELD_DOCS) == published  # every field has a meaning; none invented
    for spec in KINDS.values():
        names = [f.name for f in spec.fields]
        assert len(names) == len(set(names)), spec.kind
        assert set(names) <= published, spec.kind
        assert all(f.doc for f in spec.fields) and spec.summary


def test_the_schema_is_valid_2020_12_with_one_branch_per_kind() -> None:
    schema = check.validator(strict=False).schema
    mapping = schema["discriminator"]["mapping"]
    assert list(mapping) == [kind.value for kind in EventKind]
    assert [branch["$ref"] for branch in schema["oneOf"]] == list(mapping.values())


@pytest.mark.parametrize("kind", ALL_KINDS, ids=[k.value for k in ALL_KINDS])
def test_each_example_is_valid_and_declares_what_it_sets(kind: EventKind) -> None:
    assert check.problems(EXAMPLES[kind]) == []
    received = check.as_received(EXAMPLES[kind])
    assert check.validator(strict=False).is_valid(received)
    # The schema's own example is this very object.
    schema = check.validator(strict=False).schema
    examples = schema["$defs"][eventschema.type_name(kind)]["examples"]
    assert json.loads(json.dumps(examples)) == [received]


def _example(kind: EventKind) -> dict[str, Any]:
    return copy.deepcopy(check.as_received(EXAMPLES[kind]))


def test_an_unexpected_field_fails_strict_and_passes_the_published_schema() -> None:
    received = _example(EventKind.DELIVERED)
    received["data"]["figures"] = {"a": 1.0}  # not a delivery's field
    assert not check.validator(strict=True).is_valid(received)
    # Published: a later version may add fields; receivers that validate keep working.
    assert check.validator(strict=False).is_valid(received)
    received["data"]["new_field"] = "x"
    assert check.validator(strict=False).is_valid(received)


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        (EventKind.DELIVERED, ("data", "attempt"), "1"),  # a number as text
        (EventKind.DELIVERED, ("data", "reply"), {"code": 250}),  # a partial reply
        (EventKind.CLICKED, ("data", "link"), 1.5),
        (EventKind.OPENED, ("data", "machine"), "yes"),
        (EventKind.SCANNED, ("data", "figures"), {"score": "high"}),
        (EventKind.BOUNCED, ("timestamp",), "2026-12-07 10:00:00"),
        (EventKind.BOUNCED, ("id",), "evt_short"),
        (EventKind.BOUNCED, ("type",), "bounce"),  # no such kind
        (EventKind.TENANT_CHANGED, ("data", "after"), {"id": 7}),
    ],
)
def test_a_wrong_value_fails(kind: EventKind, path: tuple[str, ...], value: object) -> None:
    received = _example(kind)
    target = received
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert not check.validator(strict=False).is_valid(received)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=[k.value for k in ALL_KINDS])
def test_a_missing_required_field_fails(kind: EventKind) -> None:
    required = [f.name for f in KINDS[kind].fields if f.required]
    assert required, f"{kind.value}: no field is always there?"
    for name in required:
        received = _example(kind)
        del received["data"][name]
        assert not check.validator(strict=False).is_valid(received), name
    received = _example(kind)
    del received["data"]
    assert not check.validator(strict=False).is_valid(received)


def test_the_tenant_record_schema_has_no_secret_fields() -> None:
    text = json.dumps(eventschema.event_schema()["$defs"]["Tenant"])
    defs = eventschema.event_schema()["$defs"]
    assert "credentials" in text
    assert "secret" not in defs["Credential"]["properties"]
    assert "hash" not in defs["ApiKey"]["properties"]
    assert "sealed_private_key" not in defs["DkimKeyRecord"]["properties"]
    assert "sealed_secret" not in defs["WebhookEndpoint"]["properties"]


def test_an_undeclared_field_set_by_a_writer_is_reported() -> None:
    event = msgspec.structs.replace(EXAMPLES[EventKind.DELIVERED], figures={"a": 1.0})
    assert check.problems(event) == [
        "delivered sets figures, which shared/wire/eventkinds.py does not declare for it "
        "(event_object would drop it)"
    ]
    missing = msgspec.structs.replace(EXAMPLES[EventKind.DELIVERED], recipient="")
    assert any("'recipient' is a required property" in p for p in check.problems(missing))
