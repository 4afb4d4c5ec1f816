"""Whether a message gets open and click tracking, and the host its URLs point at.

Levels, the first that says wins: the message's ``X-Postline-Track`` field (ingest removes it
and hands it on as the tag ``track``), the From domain's ``TrackingSettings`` when it is a
verified domain of the message's tenant, the tenant's ``TrackingSettings``, then the
defaults of ``[signer.tracking]`` (all off). ``None`` in ``TrackingSettings`` means "what the
level below says".

The field lists what to track: ``opens``, ``clicks``, ``text_clicks`` (clicks in text/plain
parts too; implies clicks), separated by commas or spaces; ``all`` (or yes/on/true/1) is
opens and clicks, ``none`` (or no/off/false/0) is neither. It decides opens and clicks
outright; ``text_clicks`` keeps the lower levels' setting unless the field names it. A field
with no word we know is ignored (the lower levels decide).

The host: the From domain's ``host``, else the tenant's, else ``[signer.tracking] host``.
This module reads settings only; the tenant table and the message are the caller's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from services.signer.config import TRACKING_HOST, TrackingConfig
from shared.wire.records import TrackingSettings

TAG = "track"
_OFF = frozenset({"none", "no", "off", "false", "0"})
_ALL = frozenset({"all", "yes", "on", "true", "1"})
_KINDS = frozenset({"opens", "clicks", "text_clicks"})
_HOST = re.compile(TRACKING_HOST)


@dataclass(frozen=True)
class Wanted:
    """What to track in one message, and where its URLs point."""

    opens: bool = False
    clicks: bool = False
    text_clicks: bool = False  # only ever true together with clicks
    host: str = ""

    @property
    def any(self) -> bool:
        """Whether anything is to be tracked."""
        return self.opens or self.clicks

    def describe(self) -> str:
        """``opens,clicks``, ``opens``, ``clicks``, with ``+text`` for text clicks."""
        kinds = [name for name, on in (("opens", self.opens), ("clicks", self.clicks)) if on]
        return ",".join(kinds) + ("+text" if self.text_clicks else "")


def tag_value(tags: Mapping[str, str]) -> str | None:
    """The ``track`` tag (``X-Postline-Track``), matched case-insensitively."""
    for key, value in tags.items():
        if key.lower().removeprefix("x-postline-") == TAG:
            return value
    return None


def from_field(value: str) -> TrackingSettings | None:
    """The settings an ``X-Postline-Track`` value asks for (``None``: no word we know)."""
    words = {w for w in re.split(r"[\s,;]+", value.strip().lower()) if w}
    every = bool(words & _ALL)
    if not (words & _KINDS) and not every:
        return TrackingSettings(opens=False, clicks=False) if words & _OFF else None
    text = "text_clicks" in words
    return TrackingSettings(
        opens=every or "opens" in words,
        clicks=every or text or "clicks" in words,
        text_clicks=True if text else None,
    )


def resolve(
    field: str | None,
    domain: TrackingSettings | None,
    tenant: TrackingSettings | None,
    defaults: TrackingConfig,
) -> Wanted:
    """What to track for a message (see the module docstring for the order)."""
    levels = [from_field(field) if field is not None else None, domain, tenant]

    def pick(name: str) -> bool:
        for level in levels:
            value = getattr(level, name) if level is not None else None
            if value is not None:
                return bool(value)
        return bool(getattr(defaults, name))

    clicks = pick("clicks")
    host = next((lvl.host for lvl in (domain, tenant) if lvl is not None and lvl.host), "")
    return Wanted(
        opens=pick("opens"),
        clicks=clicks,
        text_clicks=clicks and pick("text_clicks"),
        host=(host or defaults.host).strip().lower().rstrip("."),
    )


def valid_host(host: str) -> bool:
    """Whether ``host`` is a DNS name (optionally ``:port``) safe to write into a URL."""
    return len(host) <= 253 and _HOST.fullmatch(host) is not None
