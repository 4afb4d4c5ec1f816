"""What a valid tenant field is: ids, names, pools, credential names, limits, settings and
open and click tracking.

Pure functions shared by the CLI and the admin API (through ``shared.tenant_admin``), so both
refuse the same input with the same words. Each raises :class:`TenantInvalid` naming the
field as it is written in the record (``limits.per_hour``); none reads the bus.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import msgspec

from shared.config import ByteSize
from shared.errors import TenantInvalid
from shared.wire.records import (
    DEFAULT_TENANT,
    ContentRules,
    ReputationThresholds,
    TenantLimits,
    TenantSettings,
    TrackingSettings,
)

#: A tenant id appears in records, metrics labels, Redis keys and URLs: short and plain.
TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
#: An IP pool names a deliverer source pool: the same alphabet as tenant ids.
POOL_NAME = TENANT_ID
#: An SMTP AUTH user name: printable, no spaces (RFC 4616 allows more; logs and the CLI
#: are simpler without quoting, and the users file never held anything else in practice).
CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+=-]{0,127}$")
MAX_NAME = 200  # a tenant's display name; API key labels likewise
PAUSED_REPLIES = ("reject", "defer")
#: A tenant's content-scanning mode ("" keeps [ingest.scanning] mode).
SCAN_MODES = ("", "off", "tag", "enforce")
SIGNED_CHANGES = ("", "refuse", "allow")
#: A file name extension in a content rule (as ``[ingest.content] blocked_extensions``).
EXTENSION = re.compile(r"^[a-z0-9][a-z0-9_~-]{0,31}$")
#: A tracking switch as the CLI and JSON give it: ``inherit`` (JSON ``null``) keeps what the
#: level above says (message header > sending domain > tenant > off).
SWITCHES: dict[str, bool | None] = {"on": True, "off": False, "inherit": None}
#: RFC 1035 2.3.4: a label of letters, digits and hyphens, 1-63 octets, no hyphen at an end.
HOST_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_HOST = 253  # a host name in text form, without the trailing dot
#: Longest per-tenant store retention: ten years, past any statutory keeping period for
#: delivery records; 0 means the store default.
MAX_RETENTION_DAYS = 3650


def tenant_id(value: str) -> str:
    """``value`` when it is a valid id for a new tenant (``default`` is reserved)."""
    if not TENANT_ID.match(value):
        raise TenantInvalid(
            f"tenant id {value!r}: expected 1-63 characters of a-z, 0-9 and '-', "
            "starting with a letter or digit"
        )
    if value == DEFAULT_TENANT:
        raise TenantInvalid(
            f"tenant id {DEFAULT_TENANT!r} is reserved (mail that matches no tenant)"
        )
    return value


def display_name(value: str, field: str = "name") -> str:
    """A display name: at most :data:`MAX_NAME` characters, no control characters."""
    if len(value) > MAX_NAME:
        raise TenantInvalid(f"{field}: longer than {MAX_NAME} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise TenantInvalid(f"{field}: contains a control character")
    return value.strip()


def ip_pool(value: str) -> str:
    """A pool name, or ``""`` for the default addresses."""
    if value and not POOL_NAME.match(value):
        raise TenantInvalid(f"ip_pool {value!r}: expected 1-63 characters of a-z, 0-9 and '-'")
    return value


def credential_name(value: str) -> str:
    """A valid SMTP AUTH user name."""
    if not CREDENTIAL_NAME.match(value):
        raise TenantInvalid(
            f"credential name {value!r}: expected 1-128 characters of letters, digits and "
            "._@+=- (starting with a letter or digit)"
        )
    return value


def domain_list(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Domains to restrict a credential to, lower-case, without a trailing dot, sorted."""
    return tuple(sorted({v.strip().lower().rstrip(".") for v in values if v.strip()}))


def limits(current: TenantLimits, values: Mapping[str, object]) -> TenantLimits:
    """``current`` with ``values`` applied (field name -> new value; 0 removes a limit).

    Values may be numbers or their text (``"25MiB"`` for ``message_size``), as the CLI and
    JSON bodies give them.
    """
    known = {f.name: f.type for f in msgspec.structs.fields(TenantLimits)}
    changes: dict[str, float | int] = {}
    for name, raw in values.items():
        if name not in known:
            raise TenantInvalid(f"limits.{name}: no such limit (known: {', '.join(sorted(known))})")
        changes[name] = _limit_value(f"limits.{name}", raw, known[name], name == "message_size")
    return msgspec.structs.replace(current, **changes)


def _limit_value(field: str, raw: object, kind: object, is_size: bool) -> float | int:
    try:
        if isinstance(raw, bool):
            raise ValueError
        if is_size:
            value: float | int = int(ByteSize.parse(raw.strip() if isinstance(raw, str) else raw))
        elif kind is float:
            value = float(raw)  # type: ignore[arg-type]  # ValueError/TypeError if not a number
        elif isinstance(raw, float) and not raw.is_integer():
            raise ValueError
        else:
            value = int(raw)  # type: ignore[call-overload]
    except (ValueError, TypeError):
        expected = "a size like '25MiB'" if is_size else "a number"
        expected = expected if is_size or kind is float else "a whole number"
        raise TenantInvalid(f"{field}: expected {expected} >= 0, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise TenantInvalid(f"{field}: expected a finite value >= 0, got {raw!r}")
    return value


def settings(current: TenantSettings, values: Mapping[str, object]) -> TenantSettings:
    """``current`` with ``values`` applied; each field is checked against its type.
    ``reputation`` (a mapping) changes only the thresholds it names."""
    known = {f.name for f in msgspec.structs.fields(TenantSettings)}
    for name in values:
        if name not in known:
            raise TenantInvalid(
                f"settings.{name}: no such setting (known: {', '.join(sorted(known))})"
            )
    own = values.get("reputation")
    if own is not None:
        if not isinstance(own, Mapping):
            raise TenantInvalid("settings.reputation: expected an object of thresholds")
        values = {**values, "reputation": reputation(current.reputation, own)}
    own_content = values.get("content")
    if own_content is not None:
        if not isinstance(own_content, Mapping):
            raise TenantInvalid("settings.content: expected an object of content rules")
        values = {**values, "content": content(current.content, own_content)}
    own_tracking = values.get("tracking")
    if own_tracking is not None:
        if not isinstance(own_tracking, Mapping):
            raise TenantInvalid("settings.tracking: expected an object of tracking settings")
        values = {**values, "tracking": tracking(current.tracking, own_tracking)}
    values = _plain_settings(values)
    reply = values.get("paused_reply", current.paused_reply)
    if reply not in PAUSED_REPLIES:
        raise TenantInvalid(
            f"settings.paused_reply: expected one of {', '.join(PAUSED_REPLIES)}, got {reply!r}"
        )
    mode = values.get("scanning", current.scanning)
    if mode not in SCAN_MODES:
        raise TenantInvalid(
            f"settings.scanning: expected one of off, tag, enforce or '' (the global mode), "
            f"got {mode!r}"
        )
    merged = {**msgspec.structs.asdict(current), **values}
    try:
        return msgspec.convert(merged, TenantSettings)
    except msgspec.ValidationError as exc:
        raise TenantInvalid(f"settings: {exc}") from exc


def _plain_settings(values: Mapping[str, object]) -> Mapping[str, object]:
    """``values`` with the one-value settings that take more than a type check normalised."""
    if "bulk_ip_pool" in values:
        values = {**values, "bulk_ip_pool": ip_pool(str(values["bulk_ip_pool"]))}
    if "require_tls" in values:
        # TLS required (shared.tlsrequire): on, off or inherit like the tracking switches.
        values = {**values, "require_tls": _switch("settings.require_tls", values["require_tls"])}
    if "retention_days" in values:
        values = {**values, "retention_days": retention_days(values["retention_days"])}
    return values


def retention_days(raw: object, field: str = "settings.retention_days") -> int:
    """A tenant's store retention in days: 0 (the store default) or 1 to
    :data:`MAX_RETENTION_DAYS`; a digit string (the CLI) or an int (JSON)."""
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and raw.strip().isdecimal():
        value = int(raw.strip())
    if value is None or not 0 <= value <= MAX_RETENTION_DAYS:
        raise TenantInvalid(
            f"{field}: expected 0 (the store default) or 1 to {MAX_RETENTION_DAYS} days, "
            f"got {raw!r}"
        )
    return value


def reputation(current: ReputationThresholds, values: Mapping[str, object]) -> ReputationThresholds:
    """``current`` with ``values`` applied: rates as fractions or percentages (``0.08``,
    ``"8%"``) from 0 to 1, ``min_messages`` a whole number; 0 keeps the global level."""
    known = {f.name for f in msgspec.structs.fields(ReputationThresholds)}
    changes: dict[str, float | int] = {}
    for name, raw in values.items():
        field = f"settings.reputation.{name}"
        if name not in known:
            raise TenantInvalid(f"{field}: no such threshold (known: {', '.join(sorted(known))})")
        if name == "min_messages":
            changes[name] = int(_limit_value(field, raw, int, False))
            continue
        changes[name] = _fraction(field, raw)
    return msgspec.structs.replace(current, **changes)


def _fraction(field: str, raw: object) -> float:
    text = raw.strip() if isinstance(raw, str) else raw
    scale = 1.0
    if isinstance(text, str) and text.endswith("%"):
        text, scale = text[:-1].strip(), 0.01
    try:
        if isinstance(text, bool):
            raise ValueError
        value = float(text) * scale  # type: ignore[arg-type]  # ValueError/TypeError if not
    except (ValueError, TypeError):
        raise TenantInvalid(f"{field}: expected a rate like 0.08 or '8%', got {raw!r}") from None
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise TenantInvalid(f"{field}: expected a rate from 0 to 1 (0%-100%), got {raw!r}")
    return value


def content(current: ContentRules, values: Mapping[str, object]) -> ContentRules:
    """``current`` with ``values`` applied: extensions as a list or comma-separated text
    (``"exe, .msi"``; lower-cased, the dot dropped; empty clears), the size as ``"10MiB"``
    or bytes, the count a whole number, ``signed_changes`` refuse or allow; an empty or zero
    value keeps the global ``[ingest.content]`` one."""
    known = {f.name for f in msgspec.structs.fields(ContentRules)}
    changes: dict[str, object] = {}
    for name, raw in values.items():
        field = f"settings.content.{name}"
        if name not in known:
            raise TenantInvalid(f"{field}: no such rule (known: {', '.join(sorted(known))})")
        if name.endswith("_extensions"):
            changes[name] = _extensions(field, raw)
        elif name == "signed_changes":
            if raw not in SIGNED_CHANGES:
                raise TenantInvalid(f"{field}: expected refuse, allow or '', got {raw!r}")
            changes[name] = raw
        else:
            changes[name] = int(_limit_value(field, raw, int, name == "max_attachment_size"))
    return msgspec.structs.replace(current, **changes)


def _extensions(field: str, raw: object) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        raise TenantInvalid(f"{field}: expected a list of extensions like exe, got {raw!r}")
    found: list[str] = []
    for item in items:
        text = str(item).strip().lower().removeprefix(".")
        if not text:
            continue
        if not EXTENSION.match(text):
            raise TenantInvalid(
                f"{field}: {item!r} is not an extension (1-32 of a-z, 0-9, '_', '~', '-')"
            )
        found.append(text)
    return tuple(sorted(set(found)))


def tracking(
    current: TrackingSettings, values: Mapping[str, object], field: str = "settings.tracking"
) -> TrackingSettings:
    """``current`` with ``values`` applied: ``opens``, ``clicks`` and ``text_clicks`` as
    on, off or inherit (JSON: true, false or null), ``host`` a host name ("" inherits).
    ``field`` names the settings in errors (``domains.shop.example.tracking``)."""
    known = {f.name for f in msgspec.structs.fields(TrackingSettings)}
    changes: dict[str, object] = {}
    for name, raw in values.items():
        path = f"{field}.{name}"
        if name not in known:
            raise TenantInvalid(f"{path}: no such setting (known: {', '.join(sorted(known))})")
        changes[name] = tracking_host(raw, path) if name == "host" else _switch(path, raw)
    return msgspec.structs.replace(current, **changes)


def _switch(field: str, raw: object) -> bool | None:
    if raw is None or isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in SWITCHES:
        return SWITCHES[raw.strip().lower()]
    raise TenantInvalid(f"{field}: expected on, off or inherit (true, false or null), got {raw!r}")


def tracking_host(raw: object, field: str = "settings.tracking.host") -> str:
    """The host tracked links and the pixel point at: a DNS name (lower case, A-labels, no
    trailing dot) of two labels or more, or "" (the level above's). Not a URL, a port or an
    address: links are ``https://<host>/...`` and TLS is the ingress's, for that name."""
    if not isinstance(raw, str):
        raise TenantInvalid(f"{field}: expected a host name, got {raw!r}")
    text = raw.strip().rstrip(".").lower()
    if not text:
        return ""
    try:
        name = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise TenantInvalid(f"{field}: {raw!r} is not a host name") from None
    labels = name.split(".")
    if (
        len(name) > MAX_HOST
        or len(labels) < 2
        or not all(HOST_LABEL.match(label) for label in labels)
        # RFC 3696 2: a top-level domain is never all digits (that is an IPv4 address).
        or labels[-1].isdigit()
    ):
        raise TenantInvalid(
            f"{field}: {raw!r} is not a host name like click.shop.example (letters, digits "
            "and '-' in dot-separated labels; no scheme, port, path or address)"
        )
    return name
