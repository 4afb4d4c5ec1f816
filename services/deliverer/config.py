"""The ``[deliverer]`` config section, decoded strictly (unknown keys are errors).

Owns: every deliverer setting with its default, bounds and doc line, and policy resolution
(defaults, then the provider's override, then the domain's). Does not read files itself:
``Config.section("deliverer", DelivererConfig)`` decodes it and names the file and key on error.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from shared.config import Config, Duration
from shared.errors import ConfigError
from shared.wire.topics import DEFAULT_RETRY_TIERS

Positive = Annotated[int, msgspec.Meta(ge=1)]
TlsMode = Literal["opportunistic", "required"]

_STRUCT = {"frozen": True, "forbid_unknown_fields": True, "kw_only": True}


class Timeouts(msgspec.Struct, **_STRUCT):
    """SMTP client timeouts; defaults are RFC 5321 section 4.5.3.2's minimums."""

    connect: Duration = Duration(30)  # TCP connect per MX address (not in the RFC; kept short)
    greeting: Duration = Duration(300)  # 4.5.3.2.1: initial 220 message, 5 minutes
    ehlo: Duration = Duration(300)  # EHLO/STARTTLS replies (as MAIL: 5 minutes)
    mail: Duration = Duration(300)  # 4.5.3.2.2: MAIL command, 5 minutes
    rcpt: Duration = Duration(300)  # 4.5.3.2.3: RCPT command, 5 minutes
    data_init: Duration = Duration(120)  # 4.5.3.2.4: DATA initiation (354), 2 minutes
    data_done: Duration = Duration(600)  # 4.5.3.2.6: DATA termination (the final reply), 10 minutes
    idle: Duration = Duration(30)  # keep an idle connection this long for reuse
    dns: Duration = Duration(10)  # one DNS query (all nameservers tried within it)


class Policy(msgspec.Struct, **_STRUCT):
    """Shaping and TLS for one destination (the defaults, or an override's fields merged)."""

    max_connections: Positive = 10  # concurrent SMTP connections to the domain
    messages_per_connection: Positive = 100  # then QUIT and reconnect
    messages_per_minute: Annotated[float, msgspec.Meta(ge=0)] = 0.0  # 0 = unlimited
    recipients_per_transaction: Positive = 100  # RFC 5321 4.5.3.1.8: at least 100
    tls: TlsMode = "opportunistic"  # required: never send in plaintext (defer instead)
    verify_certs: bool = False  # opportunistic TLS does not authenticate (RFC 7435)
    window: Positive = 200  # Deliveries held in memory per domain; the excess goes to retry
    #: Name in ``source_pools``; "" = the OS picks the address. Only for mail that ``[pools]``
    #: assigns no pool (a pool from ``[pools]`` decides the address and EHLO name).
    source_pool: str = ""


class PolicyOverride(msgspec.Struct, **_STRUCT):
    """A per-domain or per-provider override: only the fields given replace the defaults."""

    max_connections: Positive | None = None  # replaces defaults.max_connections
    messages_per_connection: Positive | None = None  # replaces defaults.messages_per_connection
    #: Replaces defaults.messages_per_minute.
    messages_per_minute: Annotated[float, msgspec.Meta(ge=0)] | None = None
    #: Replaces defaults.recipients_per_transaction.
    recipients_per_transaction: Positive | None = None
    tls: TlsMode | None = None  # replaces defaults.tls
    verify_certs: bool | None = None  # replaces defaults.verify_certs
    window: Positive | None = None  # replaces defaults.window
    source_pool: str | None = None  # replaces defaults.source_pool


class Route(msgspec.Struct, **_STRUCT):
    """A smarthost: mail for ``domains`` (``"*"`` = all) is relayed to ``host`` instead of MX."""

    domains: list[str]  # recipient domains routed here; "*" = every other domain
    host: str  # "host:port" (port defaults to 587 with tls="required", else 25)
    tls: Literal["opportunistic", "required", "implicit"] = "required"  # implicit: port 465
    verify_certs: bool = True  # check the smarthost certificate and name
    username: str = ""  # AUTH user name ("" = no AUTH)
    password_file: Path | None = None  # AUTH password, read at startup (never in the config)


class Throttling(msgspec.Struct, **_STRUCT):
    """Adaptive throttling when a destination answers 421 or a 4.7.x rate-limit reply."""

    #: Matched against "code enhanced text" of a 4.7.x reply (421 always throttles).
    patterns: tuple[str, ...] = (
        r"(?i)rate.?limit",
        r"(?i)unusual rate",  # Gmail 4.7.28
        r"(?i)too many (connections|messages|mails?|emails?|concurrent)",
        r"(?i)try (again )?later",
        r"(?i)temporarily (deferred|rate limited|throttled)",
        r"\bTSS?0[0-9]\b",  # Yahoo TSS04 / TS01
        r"\b4\.7\.650\b",  # Microsoft "server busy, rate limited"
    )
    backoff: Duration = Duration(60)  # first suspension; doubles on each throttle in a row
    max_backoff: Duration = Duration(3600)  # the longest suspension
    ramp_after: Positive = 20  # successful deliveries before one step back up


class Retry(msgspec.Struct, **_STRUCT):
    """Retry tiers and their exponential schedule."""

    tiers: tuple[str, ...] = DEFAULT_RETRY_TIERS  # topic postline.retry.<tier>; durations
    first_delay: Duration = Duration(60)  # wait before the first retry
    factor: Annotated[float, msgspec.Meta(ge=1.0, le=10.0)] = 2.5  # each delay = previous x this
    max_delay: Duration = Duration(6 * 3600)  # the longest wait between attempts
    jitter: Annotated[float, msgspec.Meta(ge=0.0, le=0.5)] = 0.2  # +/- this fraction
    max_age: Duration = Duration(3 * 86400)  # then the Delivery expires (RFC 5321 4.5.4.1)


class Dane(msgspec.Struct, **_STRUCT):
    """DANE for SMTP (RFC 7672): authenticate MX hosts by their DNSSEC-signed TLSA records.

    Needs ``deliverer.nameservers`` to be validating resolvers of your own on loopback
    (e.g. unbound on 127.0.0.1): the AD bit that says an answer was validated is trusted
    as is, and one from a resolver elsewhere (or forged on the way) would let an attacker
    switch DANE off or on at will. Configuration refuses any other nameserver.
    """

    #: Look up TLSA records of MX hosts whose MX and address records are DNSSEC-validated
    #: and, where usable ones exist, require STARTTLS and a certificate matching them.
    enabled: bool = False


class MtaSts(msgspec.Struct, **_STRUCT):
    """MTA-STS (RFC 8461): recipient domains' published TLS policies (transport/mtasts.py)."""

    enabled: bool = True  # look up, cache and apply recipient domains' MTA-STS policies
    #: CA file the policy hosts' certificates are checked against; unset = deliverer.ca_file,
    #: else the system's CA store (set it for a lab or test CA only: real policy hosts use
    #: public CAs).
    ca_file: Path | None = None
    #: Port of https://mta-sts.<domain>/; RFC 8461 says 443, other values are for labs and
    #: tests only.
    https_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 443
    connect_timeout: Duration = Duration(5)  # TCP and TLS connect to a policy host
    fetch_timeout: Duration = Duration(15)  # the whole policy fetch (connect included)
    #: Largest policy file accepted (RFC 8461 sets none; 64 KiB is common practice).
    max_policy_bytes: Annotated[int, msgspec.Meta(ge=256, le=1048576)] = 65536
    #: Fetch a cached policy again in the background once it expires within this (at most
    #: half its max_age), so an unreachable policy host rarely leaves a domain without one.
    refresh_before: Duration = Duration(86400)
    #: Longest time the _mta-sts TXT answer (the policy id) is reused before asking DNS
    #: again (a shorter DNS TTL wins).
    txt_cache: Duration = Duration(300)
    #: After a failed fetch the domain's policy is not fetched again for this long (its mail
    #: goes on under the cached policy, or none), so a broken policy host is not asked
    #: once per connection.
    fetch_retry: Duration = Duration(300)


class DelivererConfig(msgspec.Struct, **_STRUCT):
    """The ``[deliverer]`` section."""

    ehlo_name: str = "localhost"  # our name in EHLO; set it to the host's PTR name
    nameservers: list[str] = []  # "ip" or "ip:port"; empty = the system's resolv.conf
    smtp_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 25  # port of every MX host
    #: The certificates trusted when an MX host's certificate is verified (verify_certs,
    #: MTA-STS, REQUIRETLS), instead of the system's store: for a private CA or a lab.
    ca_file: Path | None = None
    mx_cache_size: Positive = 10000  # domains whose MX answers are cached (by TTL)
    negative_ttl: Duration = Duration(300)  # RFC 2308 cap for NXDOMAIN/no-data answers
    max_in_flight: Positive = 2000  # transactional Deliveries held in memory (all domains)
    #: The bulk lane's own budget (postline.outbound.bulk): a bulk backlog fills this one,
    #: never max_in_flight, so transactional mail is always fetched at once (lanes.py).
    bulk_max_in_flight: Positive = 1000
    window_full_delay: Duration = Duration(5)  # a Delivery shed by a full window waits this
    flush_interval: Duration = Duration(0.2)  # how often finished work is committed
    #: A paused (or disabled) tenant's or sending domain's queued mail waits this long in a
    #: retry tier between checks, without an attempt, until resumed or expired (hold.py).
    paused_hold: Duration = Duration(300)
    #: Mail an operator suspended (postline queue suspend) waits this long in a retry tier
    #: between checks, without an attempt; a resume releases it at once (control.py).
    suspended_hold: Duration = Duration(300)
    #: How often each replica publishes its live queue state on postline.queue.live, what
    #: postline queue summary shows as in window and in flight (snapshot.py).
    queue_snapshot_interval: Duration = Duration(5)
    fetch_batch: Positive = 500  # records read from the bus per fetch
    #: A Delivery with no outcome after this long (a lost job: a bug) is deferred with the
    #: reason, so it never holds its partition's commits; longer than any one attempt's
    #: timeouts plus its wait in the domain window.
    max_hold: Duration = Duration(3600)
    #: One log line per recipient per attempt, hold and expiry on the postline.maillog
    #: logger at info (Postfix's maillog: to=, relay=, delays=, dsn=, status=)
    mail_log: bool = True
    timeouts: Timeouts = Timeouts()
    defaults: Policy = Policy()
    providers: dict[str, PolicyOverride] = {}  # keyed by provider name (google, microsoft...)
    domains: dict[str, PolicyOverride] = {}  # keyed by recipient domain
    #: Name -> local IP addresses to bind, round robin per connection (with
    #: deliverer.ehlo_name); the older form of [pools], used when [pools] assigns no pool.
    source_pools: dict[str, list[str]] = {}
    routes: list[Route] = []
    throttling: Throttling = Throttling()
    retry: Retry = Retry()
    mta_sts: MtaSts = MtaSts()  # recipient domains' MTA-STS policies (RFC 8461)
    dane: Dane = Dane()  # DANE (RFC 7672): TLSA-authenticated MX hosts

    def policy_for(self, domain: str, provider: str) -> Policy:
        """The effective policy: defaults, then the provider's override, then the domain's."""
        policy = self.defaults
        for override in (self.providers.get(provider), self.domains.get(domain.lower())):
            if override is not None:
                changes = {
                    name: getattr(override, name)
                    for name in override.__struct_fields__
                    if getattr(override, name) is not None
                }
                policy = msgspec.structs.replace(policy, **changes)
        return policy

    def route_for(self, domain: str) -> Route | None:
        """The smarthost route for ``domain``: an exact match first, then ``"*"``."""
        domain = domain.lower()
        for route in self.routes:
            if domain in (d.lower() for d in route.domains):
                return route
        for route in self.routes:
            if "*" in route.domains:
                return route
        return None


def load(config: Config) -> DelivererConfig:
    """Decode and cross-check the section; raises :class:`ConfigError` naming the key."""
    section = config.section("deliverer", DelivererConfig)
    _check(section, config.source)
    return section


def _check(cfg: DelivererConfig, source: str) -> None:
    for index, pattern in enumerate(cfg.throttling.patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(source, f"deliverer.throttling.patterns[{index}]", str(exc)) from exc
    _check_durations(cfg, source)
    for index, server in enumerate(cfg.nameservers):
        if not _valid_hostport(server):
            raise ConfigError(source, f"deliverer.nameservers[{index}]", "expected 'ip[:port]'")
    pools = {"", *cfg.source_pools}
    for scope, overrides in (
        ("defaults", {"": cfg.defaults}),
        ("domains", cfg.domains),
        ("providers", cfg.providers),
    ):
        for name, policy in overrides.items():
            if policy.source_pool is not None and policy.source_pool not in pools:
                key = f"deliverer.{scope}" + (f".{name}" if name else "") + ".source_pool"
                raise ConfigError(source, key, f"unknown pool {policy.source_pool!r}")
    for index, route in enumerate(cfg.routes):
        if not _valid_hostport(route.host):
            raise ConfigError(source, f"deliverer.routes[{index}].host", "expected 'host[:port]'")
    _check_dane(cfg, source)


def _check_dane(cfg: DelivererConfig, source: str) -> None:
    """DANE trusts the resolver's AD bit, so only resolvers on loopback may give it."""
    if not cfg.dane.enabled:
        return
    if not cfg.nameservers:
        raise ConfigError(
            source,
            "deliverer.dane.enabled",
            "needs deliverer.nameservers: a validating resolver on loopback (e.g. unbound)",
        )
    for index, server in enumerate(cfg.nameservers):
        host, _ = split_hostport(server, 53)
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ConfigError(
                source,
                f"deliverer.nameservers[{index}]",
                "with deliverer.dane.enabled every nameserver must be a validating resolver"
                " on loopback (127.0.0.0/8 or ::1): its AD bit is trusted",
            )


def _check_durations(cfg: DelivererConfig, source: str) -> None:
    for index, tier in enumerate(cfg.retry.tiers):
        try:
            Duration.parse(tier)
        except ValueError as exc:
            raise ConfigError(source, f"deliverer.retry.tiers[{index}]", str(exc)) from exc
    if not cfg.retry.tiers:
        raise ConfigError(source, "deliverer.retry.tiers", "at least one tier is needed")
    if cfg.queue_snapshot_interval <= 0:
        raise ConfigError(source, "deliverer.queue_snapshot_interval", "must be more than 0s")
    for name in ("connect_timeout", "fetch_timeout"):
        if getattr(cfg.mta_sts, name) <= 0:
            raise ConfigError(source, f"deliverer.mta_sts.{name}", "must be more than 0s")
    if cfg.ca_file is not None and not cfg.ca_file.is_file():
        raise ConfigError(source, "deliverer.ca_file", f"{cfg.ca_file} is not a readable file")


def _valid_hostport(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    if not sep:
        return bool(value)
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def split_hostport(value: str, default_port: int) -> tuple[str, int]:
    """``"host:port"`` or ``"host"`` as a tuple (IPv6 literals in brackets: ``[::1]:25``)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or (host.count(":") and not host.endswith("]")):
        return value.strip("[]"), default_port
    return host.strip("[]"), int(port)
