"""The published JSON Schema of events as webhooks and ``postline events tail --json`` give
them (``docs/events.schema.json``, printed by ``postline events schema``).

Generated, never written by hand: the field types come from ``msgspec.json.schema`` of the
wire records (:class:`~shared.wire.records.Event`, and the tenant records a
``tenant_changed`` event shows), which fields each kind carries and what they mean from
``shared.wire.eventkinds``, and one example per kind from ``shared.wire.eventexamples``
(run through ``shared.wire.eventjson``, so the examples are real output).

The document is a ``oneOf`` of one schema per kind, told apart by ``type`` (with an
OpenAPI ``discriminator`` for code generators); each names the kind's ``data`` fields and
marks the ones always present as required. ``data`` allows fields beyond the declared ones
(``strict=False``, what is published): a later version may add a field, and a receiver
that validates must not start refusing events then. ``strict=True`` forbids them; the
tests use it to pin the writers to the table. It does not validate anything itself.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from shared.wire.eventexamples import EXAMPLES
from shared.wire.eventjson import TENANT_KINDS, event_id, event_object
from shared.wire.eventkinds import KINDS, KindSpec
from shared.wire.records import Event, EventKind, Tenant
from shared.wire.topics import EVENTS

DIALECT = "https://json-schema.org/draft/2020-12/schema"
_REF = "#/$defs/{name}"
#: The tenant records' fields that hold secrets: never shown (``eventjson.tenant_view``).
_SECRETS = {
    "Credential": "secret",
    "ApiKey": "hash",
    "DkimKeyRecord": "sealed_private_key",
    "WebhookEndpoint": "sealed_secret",
}
_TENANT_FIELDS = frozenset({"before", "after"})


def type_name(kind: EventKind) -> str:
    """The name of a kind's schema in ``$defs``: ``auto_replied`` -> ``AutoRepliedEvent``."""
    return "".join(part.capitalize() for part in kind.value.split("_")) + "Event"


def event_schema(*, strict: bool = False) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one event object, every kind."""
    (_, _), records = msgspec.json.schema_components([Event, Tenant], ref_template=_REF)
    fields = records["Event"]["properties"]
    defs: dict[str, Any] = {
        "EventId": {
            "description": "The event's id: the same on every delivery of one event (a "
            "retry, a replay): deduplicate on it.",
            "type": "string",
            "pattern": "^evt_[0-9a-f]{32}$",
        },
        "Timestamp": {
            "description": "When it happened: RFC 3339, UTC, milliseconds.",
            "type": "string",
            "format": "date-time",
            "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
        },
        "SmtpReply": _reply(records["SmtpReply"]),
        **_tenant_defs(records),
    }
    for spec in KINDS.values():
        name = type_name(spec.kind)
        defs[name] = _envelope(spec, name)
        defs[name.removesuffix("Event") + "Data"] = _data(spec, fields, strict)
    refs = {kind.value: _REF.format(name=type_name(kind)) for kind in KINDS}
    return {
        "$schema": DIALECT,
        "title": "Postline event",
        "description": "One event as a webhook POSTs it and `postline events tail --json` "
        "prints it: {id, type, timestamp, data}. A tenant's webhooks receive the kinds "
        f"{', '.join(sorted(k.value for k in TENANT_KINDS))}; the others are the "
        "operator's. Absent data fields have their empty value. See docs/events.md.",
        "oneOf": [{"$ref": ref} for ref in refs.values()],
        "discriminator": {"propertyName": "type", "mapping": refs},
        "$defs": defs,
    }


def render(*, strict: bool = False) -> str:
    """The schema as the text of ``docs/events.schema.json``."""
    return json.dumps(event_schema(strict=strict), indent=2, ensure_ascii=False) + "\n"


def example_object(kind: EventKind) -> dict[str, Any]:
    """The example event of ``kind`` as JSON data, with the id its bytes give it."""
    event = EXAMPLES[kind]
    return event_object(event, event_id(EVENTS.encode(event)))


def _envelope(spec: KindSpec, name: str) -> dict[str, Any]:
    audience = "tenant webhooks and the operator" if spec.kind in TENANT_KINDS else "operator"
    return {
        "title": spec.kind.value,
        "description": f"{spec.summary} (For: {audience}.)",
        "type": "object",
        "properties": {
            "id": {"$ref": _REF.format(name="EventId")},
            "type": {"const": spec.kind.value},
            "timestamp": {"$ref": _REF.format(name="Timestamp")},
            "data": {"$ref": _REF.format(name=name.removesuffix("Event") + "Data")},
        },
        "required": ["id", "type", "timestamp", "data"],
        "examples": [example_object(spec.kind)],
    }


def _data(spec: KindSpec, fields: dict[str, Any], strict: bool) -> dict[str, Any]:
    properties = {}
    for field in spec.fields:
        if field.name in _TENANT_FIELDS:
            schema: dict[str, Any] = {"$ref": _REF.format(name="Tenant")}
        else:
            schema = _present(fields[field.name])
        properties[field.name] = {**schema, "description": field.doc}
    return {
        "type": "object",
        "properties": properties,
        "required": [f.name for f in spec.fields if f.required],
        "additionalProperties": not strict,
    }


def _present(schema: dict[str, Any]) -> dict[str, Any]:
    """A field's schema as it appears in ``data``: never ``null`` (a null is left out)."""
    schema = dict(schema)
    options = [o for o in schema.pop("anyOf", []) if o != {"type": "null"}]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options
    return schema


def _reply(schema: dict[str, Any]) -> dict[str, Any]:
    """``SmtpReply``: its three fields are always all there (``eventjson``)."""
    return {**schema, "required": list(schema["properties"])}


def _tenant_defs(records: dict[str, Any]) -> dict[str, Any]:
    """The tenant record's schemas without the fields that hold secrets."""
    defs = {name: schema for name, schema in records.items() if name not in ("Event", "SmtpReply")}
    for name, secret in _SECRETS.items():
        schema = dict(defs[name])
        schema["properties"] = {k: v for k, v in schema["properties"].items() if k != secret}
        schema["required"] = [k for k in schema.get("required", []) if k != secret]
        defs[name] = schema
    return defs
