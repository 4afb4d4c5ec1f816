"""The ``[bouncer.tlsrpt]`` config section: TLS-RPT (RFC 8460) counting and sending.

Owns its shape, defaults and bounds and the checks msgspec cannot express, each raising
``ConfigError`` naming the key. It opens nothing and decides nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from shared.config import Duration
from shared.errors import ConfigError


class TlsRptConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Who we are in the reports, when they go and how they are sent."""

    #: Count the deliverer's tls_session events and send the daily reports. Off: nothing
    #: is counted (the days missed are never reported).
    enabled: bool = False
    #: RFC 8460 4.4 ``organization-name``: who runs this relay.
    organization_name: str = "Postline"
    #: RFC 8460 4.4 ``contact-info``: where a domain owner can ask about a report.
    contact_info: str = "postmaster@localhost"
    #: The submitter (RFC 8460 5.1/5.3): our host name in file names and mail headers.
    submitter: str = "localhost"
    #: From: of mailed reports. RFC 8460 5.3 requires a DKIM signature: the signer must
    #: have a key for this address's domain (else the receiver may discard the report).
    from_address: str = "tlsrpt@localhost"
    #: How long after a UTC day ends its report goes out (events of the day still on
    #: their way are counted until then; later ones are dropped).
    send_delay: Duration = Duration(2 * 3600)
    #: How long a failed send is retried (with backoff) before the day is given up.
    retry_for: Duration = Duration(86400)
    #: The first retry's wait; each further one doubles it, up to an hour.
    retry_backoff: Duration = Duration(60)
    #: How often the sender looks for days due (also the first retry's lower bound).
    check_interval: Duration = Duration(60)
    #: One HTTPS POST of a report, connect to answer.
    http_timeout: Duration = Duration(30)
    #: CA bundle for the HTTPS receivers' certificates; None: the system's store.
    ca_file: Path | None = None
    #: Nameservers for the ``_smtp._tls`` TXT lookups ("ip" or "ip:port"); empty: the
    #: system's resolv.conf.
    nameservers: Annotated[list[str], msgspec.Meta(max_length=16)] = []
    #: One DNS lookup, all nameservers tried within it.
    dns_timeout: Duration = Duration(10)
    #: Failure-details rows kept per policy and day and events partition; sessions past it
    #: still count in the summary (a flood of distinct errors cannot grow the records).
    max_failure_details: Annotated[int, msgspec.Meta(ge=1, le=10000)] = 200


#: Bounds of the durations (msgspec.Meta cannot bound the custom type).
_BOUNDS = (
    ("send_delay", 0.0, 86400.0),
    ("retry_for", 0.0, 7 * 86400.0),
    ("retry_backoff", 0.0, 3600.0),
    ("check_interval", 0.01, 3600.0),
    ("http_timeout", 0.1, 600.0),
    ("dns_timeout", 0.1, 120.0),
)


def validate_tlsrpt(config: TlsRptConfig, source: str, prefix: str) -> None:
    """Check what msgspec cannot; raises :class:`ConfigError` naming ``<prefix>.<key>``."""
    for key, low, high in _BOUNDS:
        value = float(getattr(config, key))
        if not low <= value <= high:
            raise ConfigError(source, f"{prefix}.{key}", f"must be between {low:g}s and {high:g}s")
    local, at, domain = config.from_address.rpartition("@")
    if not at or not local or not domain:
        raise ConfigError(source, f"{prefix}.from_address", "expected local@domain")
    if not config.submitter or any(c in config.submitter for c in "!@ "):
        raise ConfigError(source, f"{prefix}.submitter", "expected a host name")
    for index, server in enumerate(config.nameservers):
        host = server.rsplit(":", 1)[0] if server.count(":") == 1 else server
        if not host:
            raise ConfigError(source, f"{prefix}.nameservers[{index}]", "expected 'ip[:port]'")
