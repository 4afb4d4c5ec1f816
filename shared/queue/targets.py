"""What a queue action applies to, and whether a Delivery is part of it.

Owns :class:`Target` and :func:`parse_target`. A target is written ``kind:name``, as
KumoMTA's ``kcli suspend --domain`` / ``--tenant`` and Postfix's ``postqueue -s domain``
name theirs, or ``all``:

- ``domain:example.com``: mail to one recipient domain (lower case, no trailing dot);
- ``provider:google``: mail to every domain whose MX belongs to a provider (the bounded set
  of ``shared.providers``, as the metrics name them);
- ``tenant:acme``: one tenant's mail (``default`` is mail without a tenant);
- ``source:192.0.2.10``: mail sent from one local address (a pool member);
- ``message:<id>``: every Delivery of one message (the id ingest answered with);
- ``all``: everything queued.

Which kinds a verb accepts is ``actions.py``'s business. Does not publish or read anything.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from shared.errors import QueueInvalid
from shared.providers import PROVIDER_NAMES
from shared.tenant_fields import TENANT_ID
from shared.wire.records import DEFAULT_TENANT

DOMAIN = "domain"
PROVIDER = "provider"
TENANT = "tenant"
SOURCE = "source"
MESSAGE = "message"
ALL = "all"
KINDS = (DOMAIN, PROVIDER, TENANT, SOURCE, MESSAGE, ALL)

#: A host name label: letters, digits and hyphens (U-labels allowed), not at either end.
_LABEL = re.compile(
    r"^[A-Za-z0-9\u00a0-\U0010ffff]([A-Za-z0-9\-\u00a0-\U0010ffff]*[A-Za-z0-9\u00a0-\U0010ffff])?$"
)
#: Message ids: ingest's 32 hex digits; tests and other writers use similar tokens.
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Target:
    """One parsed target (see the module docstring)."""

    kind: str
    name: str = ""

    def __str__(self) -> str:
        return ALL if self.kind == ALL else f"{self.kind}:{self.name}"

    def matches(
        self,
        *,
        message_id: str,
        domain: str,
        tenant: str,
        provider: str = "",
        source: str = "",
    ) -> bool:
        """Whether mail with these properties is part of the target. ``provider`` and
        ``source`` are "" where the caller does not know them (then they do not match)."""
        if self.kind == ALL:
            return True
        if self.kind == DOMAIN:
            return domain.lower().rstrip(".") == self.name
        if self.kind == TENANT:
            return (tenant or DEFAULT_TENANT) == self.name
        if self.kind == MESSAGE:
            return message_id == self.name
        if self.kind == PROVIDER:
            return provider == self.name
        return source == self.name


def parse_target(text: str, kinds: tuple[str, ...] = KINDS) -> Target:
    """``text`` as a target of one of ``kinds``; :class:`QueueInvalid` names what is wrong."""
    text = text.strip()
    if text == ALL:
        kind, name = ALL, ""
    else:
        kind, sep, name = text.partition(":")
        if not sep or kind not in KINDS or kind == ALL:
            raise QueueInvalid(
                f"target {text!r}: expected KIND:NAME with KIND one of "
                f"{', '.join(k for k in KINDS if k != ALL)}, or 'all'"
            )
    if kind not in kinds:
        allowed = ", ".join(f"{k}:" if k != ALL else ALL for k in kinds)
        raise QueueInvalid(f"target {text!r}: this action takes {allowed}")
    return Target(kind, _name(kind, name.strip()))


def _name(kind: str, name: str) -> str:
    if kind == ALL:
        return ""
    if not name:
        raise QueueInvalid(f"target {kind}: the name is missing")
    if kind == DOMAIN:
        return domain_name(name)
    if kind == PROVIDER:
        if name not in PROVIDER_NAMES:
            raise QueueInvalid(
                f"provider {name!r}: unknown; one of {', '.join(sorted(PROVIDER_NAMES))}"
            )
        return name
    if kind == TENANT:
        if not TENANT_ID.match(name):
            raise QueueInvalid(f"tenant {name!r}: expected 1-63 characters of a-z, 0-9 and '-'")
        return name
    if kind == SOURCE:
        try:
            return str(ipaddress.ip_address(name))
        except ValueError as exc:
            raise QueueInvalid(f"source {name!r}: not an IP address") from exc
    if not _MESSAGE_ID.match(name):
        raise QueueInvalid(f"message id {name!r}: expected letters, digits, '.', '_' or '-'")
    return name


def domain_name(text: str) -> str:
    """``text`` as a recipient domain (lower case, no trailing dot); :class:`QueueInvalid`
    when it is not a host name."""
    name = text.strip().lower().rstrip(".")
    if not name or len(name) > 253:
        raise QueueInvalid(f"domain {text!r}: expected a host name")
    for label in name.split("."):
        if len(label.encode()) > 63 or not _LABEL.match(label):
            raise QueueInvalid(f"domain {text!r}: {label!r} is not a host name label")
    return name
