"""The ``[ingest]`` config section: listeners, TLS, users, trusted networks, limits, policy.

This module owns the section's types, their bounds and the cross-field checks msgspec cannot
express (unique listener names, TLS files present when a listener needs TLS, parseable
networks). It does not open files or sockets: ``tls.py``, ``auth.py`` and ``listeners.py`` do.

Example::

    [ingest]
    hostname = "smtp.example.com"
    users_file = "/etc/postline/users.json"   # postline user add NAME --domain D
    trusted_networks = ["10.0.0.0/8"]          # may relay without AUTH on a relay listener
    suppression = "refuse"                     # or "drop" (accept, drop, emit "suppressed")

    [[ingest.listeners]]
    name = "submission"
    host = "0.0.0.0"
    port = 587
    mode = "submission"                        # STARTTLS + AUTH

    [[ingest.listeners]]
    name = "smtps"
    host = "0.0.0.0"
    port = 465
    mode = "implicit_tls"

    [ingest.tls]
    cert = "/etc/postline/tls/fullchain.pem"
    key = "/etc/postline/tls/privkey.pem"

    [ingest.limits]
    max_message_size = "25MiB"
    max_recipients = 100

    [ingest.rate]
    per_user = 50.0       # messages/s sustained per user
    per_user_burst = 500

    [ingest.content]
    blocked_extensions = ["exe", "scr", "js", "vbs"]   # default: a longer list
    max_attachment_size = "10MiB"
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from shared.config import ByteSize, Config, Duration
from shared.errors import ConfigError

ListenerMode = Literal["submission", "implicit_tls", "relay"]

Count = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]


class ListenerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One SMTP listener (``[[ingest.listeners]]``)."""

    #: Name used in logs, metrics and ``ClientInfo.listener`` (unique, e.g. ``"submission"``).
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")]
    #: Address to bind (``"0.0.0.0"``, ``"::"`` or one interface).
    host: str = "127.0.0.1"
    #: TCP port; 587 for submission, 465 for implicit TLS, 25 for relay; 0 = any free port.
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 587
    #: ``submission``: STARTTLS offered, AUTH required before MAIL (RFC 6409).
    #: ``implicit_tls``: TLS from the first byte, AUTH required (RFC 8314).
    #: ``relay``: STARTTLS offered when configured, AUTH optional; trusted networks may relay.
    mode: ListenerMode = "submission"


class TlsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Server certificate (``[ingest.tls]``); re-read on SIGHUP and when the files change."""

    #: PEM certificate chain file (leaf first).
    cert: Path | None = None
    #: PEM private key file.
    key: Path | None = None
    #: Oldest protocol accepted; TLS 1.0 and 1.1 are never offered (RFC 8996).
    min_version: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    #: How often to look at the files' modification times for a renewed certificate.
    watch_interval: Duration = Duration(30)  # bounds: 0.05s .. 1d


class LimitsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Per-message and per-session limits (``[ingest.limits]``)."""

    #: Largest message accepted (advertised as SIZE; past it ``552 5.3.4``).
    max_message_size: ByteSize = ByteSize(25 * 1024**2)  # bounds: 1KiB .. 1GiB
    #: Message bytes all sessions of this process may hold in memory at once (being received
    #: or handed off); a message that would go past it gets ``452 4.3.1`` and is retried by
    #: its client. Peak memory is about twice this plus the process's base.
    max_buffered_bytes: ByteSize = ByteSize(256 * 1024**2)  # bounds: 64KiB .. 64GiB
    #: Recipients per message; RFC 5321 4.5.3.1.8 requires at least 100 (past it ``452 4.5.3``).
    max_recipients: Count = 100
    #: Concurrent sessions from one client address (past it ``421 4.7.0`` at connect).
    max_sessions_per_ip: Count = 50
    #: Idle time allowed between commands (RFC 5321 4.5.3.2.7: at least 5 minutes).
    command_timeout: Duration = Duration(300)  # bounds: 0.1s .. 1h
    #: Time allowed to send the whole DATA block (RFC 5321 4.5.3.2.6: 10 minutes).
    data_timeout: Duration = Duration(600)  # bounds: 0.1s .. 2h
    #: Failed AUTH attempts from one address (not in ``trusted_networks``), and for one user
    #: name from one address (any), within ``auth_failure_window`` before ``421``.
    auth_failures: Count = 5
    #: Failed AUTH attempts for one user name from all addresses within
    #: ``auth_failure_window``, after which that user is refused except from addresses it
    #: authenticated from in the last 7 days and from trusted networks.
    auth_failures_per_user: Count = 20
    #: The window in which AUTH failures are counted (and how long a lock lasts).
    auth_failure_window: Duration = Duration(300)  # bounds: 1s .. 1d
    #: Refused commands in one session before ``421 4.7.0 Too many errors`` and close
    #: (Postfix's ``smtpd_hard_error_limit``); suppressed recipients and ``452 4.5.3`` do
    #: not count.
    max_errors: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 20
    #: Rejection events waiting to be published; past it they are dropped and counted in
    #: ``postline_ingest_rejection_events_dropped_total`` (the refusals themselves still happen).
    rejection_event_queue: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 10_000
    #: Most ``X-Postline-*`` control headers turned into tags per message (the rest are dropped).
    max_tags: Annotated[int, msgspec.Meta(ge=0, le=64)] = 16


class RateConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Message rates as token buckets (``[ingest.rate]``); a rate of 0 means unlimited."""

    #: Messages per second one authenticated user may start (sustained).
    per_user: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] = 0.0
    #: Messages one user may send in a burst above ``per_user``.
    per_user_burst: Count = 100
    #: Messages per second one client address may start (sustained).
    per_ip: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] = 0.0
    #: Messages one address may send in a burst above ``per_ip``.
    per_ip_burst: Count = 100


class ApiConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The HTTP sending API (``[ingest.api]``), a listener beside the SMTP ones; off unless
    ``listen`` is set. Same policy, limits and durability as SMTP (``services/ingest/api``)."""

    #: Address to serve the API on, ``host:port`` (``"127.0.0.1:8025"``, ``"[::]:8025"``,
    #: ``"0.0.0.0:8025"``; port 0 = any free port); ``""``: no API. Plain HTTP: put TLS in
    #: front of it (an ingress or a proxy), as for the other HTTP ports.
    listen: str = ""
    #: Largest request body (JSON with base64 attachments, a batch, a raw message): past it
    #: ``413``. Base64 makes attachments a third larger than they are.
    max_request_size: ByteSize = ByteSize(25 * 1024**2)  # bounds: 1KiB .. 1GiB
    #: Most messages in one ``POST /v1/messages/batch``.
    max_batch: Annotated[int, msgspec.Meta(ge=1, le=500)] = 500
    #: Open connections to the API listener; past it a new one gets ``503`` and is closed.
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    #: How long the answer to a request with an ``Idempotency-Key`` is kept, per tenant, so a
    #: retry with the same key gets it again instead of sending twice (in Redis with
    #: ``[limits] backend = "redis"``, shared by every replica; else in this process).
    idempotency_ttl: Duration = Duration(86400)  # bounds: 1m .. 7d
    #: Most answers kept in process (``[limits] backend = "local"``, or Redis unreachable with
    #: ``on_redis_failure = "open"``); the oldest go first past it.
    idempotency_entries: Annotated[int, msgspec.Meta(ge=100, le=10_000_000)] = 100_000


ScanMode = Literal["off", "tag", "enforce"]


class ScanningConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Content scanning at the end of DATA, before the 250 (``[ingest.scanning]``), by an
    rspamd normal worker over its HTTP protocol (``services/ingest/scanning``). Off unless
    ``url`` is set; a tenant's ``scanning`` setting overrides ``mode``."""

    #: The rspamd normal worker, ``http://host:port`` (``"http://127.0.0.1:11333"``);
    #: ``""``: no scanning.
    url: str = ""
    #: ``enforce``: act on the verdict (refuse, defer, quarantine, tag); ``tag``: only add
    #: the verdict's headers, never refuse; ``off``: do not scan.
    mode: ScanMode = "enforce"
    #: The whole scan, connection included; past it the scanner counts as unavailable.
    timeout: Duration = Duration(15)  # bounds: 0.1s .. 5m
    #: The scanner unavailable (down, too slow, a broken answer): ``open`` sends the message
    #: unscanned (a ``scanned`` event says so, a metric counts it, an alert fires); ``closed``
    #: answers ``451 4.7.0`` so the client retries later. Never a 5xx, never a lost message.
    on_failure: Literal["open", "closed"] = "open"
    #: Largest message sent to the scanner (rspamd's own default limit is 50 MB) ...
    max_size: ByteSize = ByteSize(20 * 1024**2)  # bounds: 1KiB .. 1GiB
    #: ... and what happens to a larger one: ``skip`` (sent unscanned, with a ``scanned``
    #: event saying so) or ``refuse`` (``552 5.3.4``).
    over_size: Literal["skip", "refuse"] = "skip"
    #: A score at or above this, short of the scanner's reject, quarantines the message
    #: (``postline.quarantine``, ``postline quarantine release``) instead of sending it;
    #: 0: no quarantine.
    quarantine_score: Annotated[float, msgspec.Meta(ge=0, le=1000)] = 0.0
    #: Check at start that the scanner answers and, when it does not, run without scanning
    #: (logged; ``postline run``'s banner says so). For a laptop or a trial; in production
    #: leave it off, so an outage follows ``on_failure`` instead of silently not scanning.
    probe_at_start: bool = False
    #: How many of the verdict's symbols (highest scores first) go into its event.
    top_symbols: Annotated[int, msgspec.Meta(ge=0, le=100)] = 8


#: An attachment's file name extension as the policy compares it: lower case, no dot.
Extension = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_~-]{0,31}$")]

#: Executable and script types refused by default: what Windows, macOS or Android runs or
#: installs when opened from a mail client (programs, installers, scripts, shortcuts, help
#: and control-panel files), plus disk images, which Windows mounts on a double click so
#: that the files inside escape the "downloaded from the Internet" mark. Gmail and Outlook
#: refuse nearly the same list, so such mail would bounce later anyway; refused here, the
#: sending application learns it at once, before the 250. Archives (zip) are not on it:
#: businesses send invoices, photos and log bundles in them; ``inspect_archives`` looks at
#: the names inside instead. Office files with macros (docm, xlsm) are not on it either:
#: they are everyday business documents; judging them is the content scanner's work.
DEFAULT_BLOCKED_EXTENSIONS: tuple[str, ...] = (
    # Windows programs and installers
    *("exe", "com", "scr", "pif", "cpl", "dll", "sys", "drv", "ocx", "ex_"),
    *("msi", "msp", "mst", "msix", "msixbundle", "appx", "appxbundle", "application"),
    *("appref-ms", "gadget", "xll", "cab", "diagcab"),
    # scripts and what runs them
    *("bat", "cmd", "vb", "vbs", "vbe", "js", "jse", "wsf", "wsh", "wsc", "sct", "hta"),
    *("ps1", "psm1", "ps1xml", "msc", "jar", "jnlp", "reg", "inf", "chm", "hlp"),
    # shortcuts and shell files that point elsewhere or run on being shown
    *("lnk", "url", "scf", "shb", "shs", "library-ms", "search-ms", "settingcontent-ms"),
    # disk images and other platforms' packages
    *("iso", "img", "vhd", "vhdx", "dmg", "apk"),
)


class ContentConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Attachment and content policy at the end of DATA (``[ingest.content]``), without a
    content scanner: refused types, sizes and counts, and signed messages ingest would
    change (``policy/attachments.py``, ``policy/signatures.py``). A tenant's
    ``settings.content`` adds to or relaxes it (``postline tenant set --content``)."""

    #: Attachment file name extensions refused with ``550 5.7.1`` (lower case, no dot). The
    #: last extension counts ("invoice.pdf.exe" is an exe), after the trailing dots and
    #: spaces Windows ignores; ``[]`` refuses no type. The default is the executable and
    #: script types mail clients run when opened; zip is not on it (``inspect_archives``).
    blocked_extensions: Annotated[list[Extension], msgspec.Meta(max_length=1024)] = msgspec.field(
        default_factory=lambda: list(DEFAULT_BLOCKED_EXTENSIONS)
    )
    #: Look at the file names inside ``.zip`` attachments (the archive's directory only:
    #: nothing is decompressed; an encrypted zip's names are listed too) and refuse one
    #: holding a refused type, or one that cannot be read.
    inspect_archives: bool = True
    #: Most entries a zip attachment may list when ``inspect_archives`` is on (past it the
    #: attachment is refused rather than half inspected).
    max_archive_entries: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 10_000
    #: Refuse a program (Windows PE, Linux ELF, macOS Mach-O, by its first bytes) attached
    #: under a name whose type is not refused anyway (``report.pdf`` holding an ``MZ...PE``
    #: header): a disguise with no honest use. A tenant's ``allowed_extensions`` allow it.
    detect_executables: bool = True
    #: Largest attachment (decoded), past it ``552 5.3.4``; 0: only the message size
    #: limits apply.
    max_attachment_size: ByteSize = ByteSize(0)  # bounds: 0, or 1KiB .. 1GiB
    #: Most attachments (named parts) in one message, past it ``550 5.7.1``; 0: no limit.
    max_attachments: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0
    #: A message that already carries a DKIM-Signature which ingest's changes would break
    #: (``smuggling = "normalise"`` rewriting its bare CR or LF; removing ``X-Postline-*``
    #: headers it signed; adding a Message-ID or Date it signed as absent): ``refuse``
    #: with ``550 5.6.0`` saying so, or ``allow`` (send it; its signature fails).
    signed_changes: Literal["refuse", "allow"] = "refuse"


class IngestConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The ``[ingest]`` section."""

    #: Name in the greeting and in Received headers; default: the machine's FQDN.
    hostname: str = ""
    #: The SMTP listeners; at least one.
    listeners: Annotated[list[ListenerConfig], msgspec.Meta(min_length=1, max_length=16)] = (
        msgspec.field(default_factory=lambda: [ListenerConfig(name="submission")])
    )
    #: Server certificate and key (required by submission and implicit_tls listeners).
    tls: TlsConfig = TlsConfig()
    #: Users file (JSON or TOML) written by ``postline user add``; required for AUTH.
    users_file: Path | None = None
    #: Client networks (CIDR) that may relay without AUTH on a relay listener.
    trusted_networks: Annotated[list[str], msgspec.Meta(max_length=1024)] = []
    #: Size, recipient, session, timeout and AUTH-failure limits.
    limits: LimitsConfig = LimitsConfig()
    #: Message rates per user and per client address.
    rate: RateConfig = RateConfig()
    #: Suppressed recipient: ``refuse`` at RCPT with ``550 5.1.1``, or ``drop`` it silently
    #: after accepting the message, with a ``suppressed`` event.
    suppression: Literal["refuse", "drop"] = "refuse"
    #: A tenant's hourly, daily or monthly quota used up: ``defer`` (``452 4.5.3``, the
    #: client keeps the mail until the window resets) or ``reject`` (``550 5.7.1``).
    quota_exhausted: Literal["defer", "reject"] = "defer"
    #: Bare CR or LF in DATA: ``refuse`` with ``550 5.6.0`` or ``normalise`` to CRLF.
    smuggling: Literal["refuse", "normalise"] = "refuse"
    #: The HTTP sending API (off by default).
    api: ApiConfig = ApiConfig()
    #: Content scanning by rspamd (off by default).
    scanning: ScanningConfig = ScanningConfig()
    #: Attachment and content policy (refused types, sizes, signed messages).
    content: ContentConfig = ContentConfig()

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The trusted networks, parsed (call :func:`validate` first)."""
        return [ipaddress.ip_network(n, strict=False) for n in self.trusted_networks]


#: Bounds of the duration and size fields (msgspec.Meta cannot bound these custom types).
_BOUNDS: tuple[tuple[str, float, float], ...] = (
    ("tls.watch_interval", 0.05, 86400),
    ("limits.max_message_size", 1024, 1024**3),
    ("limits.max_buffered_bytes", 64 * 1024, 64 * 1024**3),
    ("limits.command_timeout", 0.1, 3600),
    ("limits.data_timeout", 0.1, 7200),
    ("limits.auth_failure_window", 1, 86400),
    ("api.max_request_size", 1024, 1024**3),
    ("api.idempotency_ttl", 60, 7 * 86400),
    ("scanning.timeout", 0.1, 300),
    ("scanning.max_size", 1024, 1024**3),
)


def _check_bounds(config: IngestConfig, source: str) -> None:
    for key, low, high in _BOUNDS:
        section, _, name = key.partition(".")
        value = float(getattr(getattr(config, section), name))
        if not low <= value <= high:
            raise ConfigError(source, f"ingest.{key}", f"must be between {low:g} and {high:g}")


def validate(config: IngestConfig, source: str) -> IngestConfig:
    """Cross-field checks and bounds; raises :class:`ConfigError` naming the key."""
    _check_bounds(config, source)
    names = [listener.name for listener in config.listeners]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(source, f"ingest.listeners[{i}].name", f"duplicate name {name!r}")
    for i, net in enumerate(config.trusted_networks):
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError as exc:
            raise ConfigError(source, f"ingest.trusted_networks[{i}]", str(exc)) from exc
    size = int(config.content.max_attachment_size)
    if size and not 1024 <= size <= 1024**3:
        raise ConfigError(
            source, "ingest.content.max_attachment_size", "must be 0 or between 1024 and 1073741824"
        )
    if config.api.listen:
        try:
            api_address(config.api.listen)
        except ValueError as exc:
            raise ConfigError(source, "ingest.api.listen", str(exc)) from exc
    if config.scanning.url:
        try:
            scanner_url(config.scanning.url)
        except ValueError as exc:
            raise ConfigError(source, "ingest.scanning.url", str(exc)) from exc
    needs_tls = [x.name for x in config.listeners if x.mode in ("submission", "implicit_tls")]
    if needs_tls and (config.tls.cert is None or config.tls.key is None):
        raise ConfigError(
            source, "ingest.tls", f"cert and key are required by listener(s) {', '.join(needs_tls)}"
        )
    needs_auth = [x.name for x in config.listeners if x.mode != "relay"]
    if needs_auth and config.users_file is None:
        raise ConfigError(
            source, "ingest.users_file", f"required by listener(s) {', '.join(needs_auth)}"
        )
    return config


def api_address(listen: str) -> tuple[str, int]:
    """``host:port`` of ``[ingest.api] listen`` (``[::1]:8025`` for IPv6); ``ValueError``
    naming the problem."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected host:port, got {listen!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host:
        raise ValueError(f"no host in {listen!r} (0.0.0.0 or :: for every address)")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError(f"{host!r} is not an IP address") from None
    return host, int(port)


def scanner_url(url: str) -> str:
    """``[ingest.scanning] url`` without a trailing slash; ``ValueError`` naming the problem."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f"expected http://host:port, got {url!r}")
    host = rest.split("/", 1)[0]
    if not host or host.startswith(":"):
        raise ValueError(f"no host in {url!r}")
    return url.rstrip("/")


def load(config: Config) -> IngestConfig:
    """Decode and check the ``[ingest]`` section of a loaded config."""
    return validate(config.section("ingest", IngestConfig), config.source)
