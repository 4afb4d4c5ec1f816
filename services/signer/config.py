"""The signer's ``[signer]`` config section, decoded strictly.

Owns the shape, defaults and bounds of every signer setting and reading the HMAC secret it
names. It does not load keys (``keys.py``) or decide anything about a message.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import msgspec

from shared.config import ByteSize, Config, Duration
from shared.errors import ConfigError

SECTION = "signer"

#: A tracking host: a DNS name (lower case, LDH labels), optionally ``:port``. Nothing else
#: may reach the URLs written into a message's HTML (no scheme, path, quote or space).
TRACKING_HOST = (
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
    r"(?::[0-9]{1,5})?$"
)
#: Bounds of ``[signer.tracking] max_size`` (ByteSize cannot be bounded with msgspec.Meta).
_TRACKING_MAX_SIZE = (1024, 1024**3)

#: Tag values (from ``X-Postline-*`` headers, via ingest) that mark a message as bulk.
TRUTHY = frozenset({"1", "yes", "true", "on", "bulk"})


#: (field, lowest, highest) in seconds for every duration setting of the section.
_DURATION_BOUNDS = (
    ("key_reload_interval", 0.1, 3600.0),
    ("signature_expiry", 0.0, 90 * 86400.0),
    ("max_message_age", 60.0, 30 * 86400.0),
    ("first_attempt_delay", 0.0, 86400.0),
)


class BulkRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A message is bulk when every non-empty field of one rule matches it."""

    user: str = ""  # the authenticated submitting user
    sender_domain: str = ""  # the From header's domain
    tag: str = ""  # an ``X-Postline-*`` tag name (case-insensitive) ...
    value: str = ""  # ... and its value ("" = the tag is present with any value)

    def __post_init__(self) -> None:
        if not (self.user or self.sender_domain or self.tag):
            raise ValueError("a bulk rule needs at least one of user, sender_domain, tag")


class TrackingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Open and click tracking (``[signer.tracking]``): the defaults under every tenant's
    and sending domain's settings and a message's ``X-Postline-Track`` field, all off."""

    #: Host of the tracking endpoints, ``https://<host>/o/<token>`` (pixel) and
    #: ``/c/<token>`` (links), served by the bouncer behind the operator's TLS ingress;
    #: a tenant or sending domain may name its own (a CNAME to this one). ""
    #: = none: mail that asks for tracking goes untouched, with a ``tracking`` event.
    host: str = ""  # a DNS name, optionally with :port
    #: Add a 1x1 pixel to HTML parts (opens), for tenants and domains that do not say.
    opens: bool = False
    #: Rewrite the http(s) links of HTML parts (clicks), for tenants and domains that do
    #: not say.
    clicks: bool = False
    #: With clicks, also rewrite bare http(s) URLs in text/plain parts.
    text_clicks: bool = False
    #: Largest message rewritten; a larger one goes untouched with a ``tracking`` event
    #: (each recipient gets its own rewritten copy, all held in memory while signed).
    max_size: ByteSize = ByteSize(10 * 1024**2)  # bounds: 1KiB .. 1GiB


class SignerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Everything the signer reads from ``[signer]``."""

    # --- DKIM keys and signing domains (RFC 6376) ---
    #: Directory of private keys, one file per selector (see ``keys.py`` for the names).
    keys_dir: Path = Path("secrets/dkim")
    #: How often the key directory is scanned for changed files (no restart needed).
    key_reload_interval: Duration = Duration(10)  # 0.1s .. 1h
    #: Fallback signing domain per authenticated user, when the From domain has no key.
    user_signing_domains: dict[str, str] = {}
    #: Fallback signing domain for everyone else ("" = none).
    signing_domain: str = ""
    #: Send a message unsigned when neither the From domain nor a fallback has a key;
    #: when false such a message fails with a ``failed`` event.
    allow_unsigned: bool = False
    #: Signature lifetime written as ``x=`` (RFC 6376 3.5); 0 = no ``x=`` tag.
    signature_expiry: Duration = Duration(0)  # 0 .. 90d

    # --- VERP return paths (shared.wire.tokens) ---
    #: One Delivery per recipient with its own HMAC return path; off: one per domain.
    verp: bool = True
    #: Local part before ``+token`` in return paths (the bouncer's ``verp_local``).
    verp_local: str = "b"
    #: The domain bounces come back to (its MX is the bouncer); a tenant's verified From
    #: domain uses its own return-path host instead, a CNAME to this one (returnpath.py).
    bounce_domain: str = "bounces.localhost"
    #: HMAC secret shared with the bouncer (VERP and unsubscribe tokens).
    secret_file: Path = Path("secrets/verp.key")

    # --- List-Unsubscribe (RFC 2369) and one-click (RFC 8058) for bulk mail ---
    #: Base of the one-click HTTPS URL; the token is appended ("" = no unsubscribe headers).
    unsubscribe_url: str = ""
    #: Domain of the unsubscribe mailto (default: ``bounce_domain``).
    unsubscribe_mailto_domain: str = ""
    #: Local part of the unsubscribe mailto (the bouncer's ``unsubscribe_local``).
    unsubscribe_local: str = "unsubscribe"
    #: Messages matching any of these rules are bulk (besides an ``X-Postline-Bulk`` tag).
    bulk_rules: tuple[BulkRule, ...] = ()

    # --- Delivery policy ---
    #: A Delivery expires this long after ingest accepted the message.
    max_message_age: Duration = Duration(3 * 86400)  # 1m .. 30d
    #: Delay before the first delivery attempt (``not_before`` = signing time + this).
    first_attempt_delay: Duration = Duration(0)  # 0 .. 1d

    # --- DNS checks (postline domain check) ---
    #: The SPF include that authorises our outbound addresses (e.g. ``_spf.relay.example``).
    spf_include: str = ""
    #: Our outbound IP addresses, checked against ip4:/ip6: terms when there is no include.
    sending_ips: tuple[str, ...] = ()

    # --- Throughput ---
    #: Signing processes; 0 = one per CPU available to this process, 1 = in-process.
    workers: Annotated[int, msgspec.Meta(ge=0, le=256)] = 0
    #: Most Submissions handled per batch (one bus transaction).
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 200

    # --- Open and click tracking ---
    #: Defaults of open and click tracking (off) and the tracking host.
    tracking: TrackingConfig = TrackingConfig()

    def __post_init__(self) -> None:
        # Duration is a float subclass msgspec cannot bound with Meta: checked here.
        for name, low, high in _DURATION_BOUNDS:
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low:g}s and {high:g}s, got {value:g}s")
        if "@" in self.bounce_domain or not self.bounce_domain:
            raise ValueError("bounce_domain must be a domain name")
        if self.unsubscribe_url and not self.unsubscribe_url.startswith("https://"):
            raise ValueError("unsubscribe_url must be an https:// URL (RFC 8058 section 3.1)")

    @property
    def mailto_domain(self) -> str:
        """The domain of the unsubscribe mailto."""
        return self.unsubscribe_mailto_domain or self.bounce_domain


def load_signer_config(config: Config) -> SignerConfig:
    """Decode ``[signer]``; raises ``ConfigError`` naming the file and key."""
    section = config.section(SECTION, SignerConfig)
    host = section.tracking.host
    if host and (len(host) > 253 or re.fullmatch(TRACKING_HOST, host) is None):
        raise ConfigError(
            config.source,
            "signer.tracking.host",
            f"expected a host name like t.example.com, got {host!r}",
        )
    low, high = _TRACKING_MAX_SIZE
    if not low <= section.tracking.max_size <= high:
        raise ConfigError(
            config.source, "signer.tracking.max_size", f"must be between {low} and {high} bytes"
        )
    return section
