"""The ``[bouncer.tracking]`` config section: the open and click endpoints' settings.

Owns their shape, defaults and bounds, and the checks msgspec cannot express (paths, CIDR
lists), each raising ``ConfigError`` naming the key. It opens nothing and decides nothing.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import msgspec

from shared.config import Duration
from shared.errors import ConfigError

#: Apple's address block: its enterprise network guide ("Use Apple products on enterprise
#: networks", support.apple.com/101555) lists 17.0.0.0/8 as Apple's. Mail Privacy
#: Protection's proxies fetch the images of a message from there.
APPLE_NETWORKS = ("17.0.0.0/8",)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrackingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Where the open pixel and tracked links are served, and how machines are told apart."""

    #: URL prefix of the open pixel (``GET <open_path><token>``). The signer writes ``/o/``:
    #: change it only together with an ingress that rewrites the path.
    open_path: str = "/o/"
    #: URL prefix of tracked links (``GET <click_path><token>``, 302 to the original URL).
    click_path: str = "/c/"
    #: Proxies (CIDR) whose ``X-Forwarded-For`` is believed: the ingress that ends TLS.
    #: Empty (the default): the client address is the connection's, the header is ignored.
    trusted_proxies: Annotated[list[str], msgspec.Meta(max_length=1024)] = []
    #: Networks (CIDR) whose image fetches are Apple Mail Privacy Protection's prefetch.
    apple_networks: Annotated[list[str], msgspec.Meta(max_length=1024)] = msgspec.field(
        default_factory=lambda: list(APPLE_NETWORKS)
    )
    #: A click sooner than this after the message was signed is a scanner's (no person
    #: reads and clicks that fast); "0s": off.
    early_click: Duration = Duration(10)
    #: This many distinct links of one message and recipient clicked within ``burst_window``
    #: is a scanner following every link: all the clicks of the burst are machine.
    burst_links: Annotated[int, msgspec.Meta(ge=2, le=20)] = 3
    #: The burst window; clicks are held this long before their event is published, so the
    #: first clicks of a burst are flagged too. "0s": no burst detection, no hold.
    burst_window: Duration = Duration(2)
    #: Most messages (message and recipient) whose clicks of the last two burst windows are
    #: remembered for burst detection, least recently clicked forgotten first. Per process:
    #: with several bouncer replicas, a burst spread over them is seen in part.
    recent_messages: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 100_000
    #: Events waiting to be published (held clicks included); past it new events are
    #: dropped and counted (the redirect and the pixel are served all the same).
    max_pending: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 10_000

    def networks(self, name: str) -> list[Network]:
        """The CIDR list ``name`` (``trusted_proxies``, ``apple_networks``), parsed
        (valid after :func:`validate_tracking`)."""
        values: list[str] = getattr(self, name)
        return [ipaddress.ip_network(value, strict=False) for value in values]


#: Bounds of the durations (msgspec.Meta cannot bound the custom type).
_BOUNDS = (("early_click", 0.0, 3600.0), ("burst_window", 0.0, 60.0))


def validate_tracking(config: TrackingConfig, source: str, prefix: str, taken: str) -> None:
    """Check what msgspec cannot; ``taken`` is the unsubscribe prefix (must differ).

    Raises :class:`ConfigError` naming ``<prefix>.<key>``.
    """
    for key, low, high in _BOUNDS:
        value = float(getattr(config, key))
        if not low <= value <= high:
            raise ConfigError(source, f"{prefix}.{key}", f"must be between {low:g}s and {high:g}s")
    for key in ("open_path", "click_path"):
        path: str = getattr(config, key)
        if len(path) < 3 or not path.startswith("/") or not path.endswith("/"):
            raise ConfigError(source, f"{prefix}.{key}", "must start and end with '/'")
        if path == taken:
            raise ConfigError(source, f"{prefix}.{key}", "is the unsubscribe path")
    if config.open_path == config.click_path:
        raise ConfigError(source, f"{prefix}.click_path", "must differ from open_path")
    for key in ("trusted_proxies", "apple_networks"):
        for i, value in enumerate(getattr(config, key)):
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError as exc:
                raise ConfigError(source, f"{prefix}.{key}[{i}]", str(exc)) from exc
