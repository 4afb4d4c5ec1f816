"""The bouncer's ``[bouncer]`` config section, decoded strictly.

Owns the shape, defaults and bounds of every bouncer setting and reading the secret files
they name (the tracking endpoints' subsection is ``tracking/config.py``). It does not load
the rule table (``rules.py``) or decide anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from services.bouncer.tlsrpt.config import TlsRptConfig, validate_tlsrpt
from services.bouncer.tracking.config import TrackingConfig, validate_tracking
from shared.config import Config, Duration, Port

SECTION = "bouncer"


class DsnPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """When and how the bouncer tells an original sender that its message failed."""

    enabled: bool = True  # send RFC 3464 DSNs at all
    bulk: bool = False  # also for bulk mail (Precedence: bulk/list, List-Id, List-Unsubscribe)
    postmaster: str = "postmaster@localhost"  # the From: of the DSNs we send
    reporting_mta: str = "localhost"  # Reporting-MTA of our DSNs (RFC 3464 2.2.2)
    expires_after: Duration = Duration(5 * 86400)  # how long the deliverer may retry a DSN
    include_headers: bool = True  # attach the original headers (text/rfc822-headers)


class BouncerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Everything the bouncer reads from ``[bouncer]``."""

    # SMTP intake for the bounce domain (the VERP return paths the signer writes).
    listen_host: str = "127.0.0.1"  # address of the bounce-domain SMTP listener
    listen_port: Port = 2525  # its port (the bounce domain's MX points here; 25 in production)
    bounce_domain: str = "bounces.localhost"  # domain of VERP return paths and the mailto
    verp_local: str = "b"  # local part prefix of VERP return paths
    unsubscribe_local: str = "unsubscribe"  # local part of the List-Unsubscribe mailto
    secret_file: Path = Path("secrets/verp.key")  # HMAC secret shared with the signer
    #: Largest DSN or feedback report accepted, in bytes (past it ``552 5.3.4``).
    max_report_size: Annotated[int, msgspec.Meta(ge=1024, le=64 * 1024 * 1024)] = 10 * 1024 * 1024
    smtp_timeout: Duration = Duration(300)  # RFC 5321 4.5.3.2: idle limits are minutes
    # Classification.
    rules_file: Path | None = None  # operator rule table; None: the table shipped with Postline
    # Suppression policy.
    soft_bounce_limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5  # N soft bounces ...
    soft_bounce_window: Duration = Duration(7 * 86400)  # ... within this window suppress
    suppress_blocks: bool = False  # "block" is usually our reputation, not the address
    # HTTP: one-click unsubscribe on the process's HTTP port ([http], public).
    unsubscribe_path: str = "/unsubscribe/"  # the URL prefix the signer writes
    # The admin API listens apart from the public port, on loopback unless said otherwise.
    admin_token_file: Path | None = None  # bearer token for /admin/...; None: admin API off
    admin_host: str = "127.0.0.1"  # address of the admin API listener (keep it private)
    admin_port: Port = 9465  # its port (only bound when admin_token_file is set)
    # DSNs back to the original sender.
    dsn: DsnPolicy = DsnPolicy()
    # Open and click tracking endpoints on the process's (public) HTTP port.
    tracking: TrackingConfig = TrackingConfig()
    # TLS-RPT (RFC 8460): daily reports of the deliverer's TLS sessions to recipient domains.
    tlsrpt: TlsRptConfig = TlsRptConfig()

    def __post_init__(self) -> None:
        if not self.unsubscribe_path.startswith("/") or not self.unsubscribe_path.endswith("/"):
            raise ValueError("unsubscribe_path must start and end with '/'")
        if "@" in self.bounce_domain or not self.bounce_domain:
            raise ValueError("bounce_domain must be a domain name")


def load_bouncer_config(config: Config) -> BouncerConfig:
    """Decode ``[bouncer]``; raises ``ConfigError`` naming the file and key."""
    # __post_init__ errors surface as msgspec ValidationErrors, which section() maps.
    section = config.section(SECTION, BouncerConfig)
    validate_tracking(
        section.tracking, config.source, f"{SECTION}.tracking", taken=section.unsubscribe_path
    )
    validate_tlsrpt(section.tlsrpt, config.source, f"{SECTION}.tlsrpt")
    return section
