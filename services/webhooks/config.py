"""The webhooks stage's ``[webhooks]`` config section, decoded strictly.

Owns the request limits, the per-endpoint queue and circuit breaker, when an endpoint is
paused, the retry tiers and the SSRF rules. Why the defaults:

- ``request_timeout`` 10s: a receiver should answer at once and process later (Stripe and
  Svix time out at 15s and less); a hanging receiver holds its own events for this long only.
- ``max_age`` 24h: the issue's "retried for up to 24 h"; Svix and Standard Webhooks'
  reference schedule retry for about a day as well.
- ``failure_threshold`` 5 consecutive failures open the circuit for ``circuit_open`` (30s):
  one flaky answer does not, an endpoint that is down stops costing a request per event.
- ``pause_after_failures`` 100 over at least ``pause_after`` (1h): a receiver down for an
  hour or more is paused, with an event, instead of filling the retry tiers for a day.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from shared.config import Config, Duration
from shared.errors import ConfigError
from shared.wire.topics import DEFAULT_WEBHOOK_TIERS

SECTION = "webhooks"

Positive = Annotated[int, msgspec.Meta(ge=1)]


class WebhooksConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The ``[webhooks]`` section."""

    #: Events and retry records held in memory, all endpoints together (the loops' windows).
    max_in_flight: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 5000
    fetch_batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 500  # records per fetch
    flush_interval: Duration = Duration(0.2)  # how often finished work is committed
    request_timeout: Duration = Duration(10)  # one POST, connect to the end of the answer
    connect_timeout: Duration = Duration(5)  # the TCP and TLS handshake
    #: Requests at once per endpoint (each with up to the endpoint's batch of events).
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=64)] = 4
    #: Events an endpoint may always queue in memory. Past it, an event goes to the first
    #: retry tier at once when the queue would take longer than max_queue_wait to send, so
    #: a slow or hanging endpoint never fills max_in_flight (no head-of-line blocking).
    max_queued: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 200
    #: About the first retry delay: an event shed to the tiers waits that long anyway.
    max_queue_wait: Duration = Duration(30)
    #: Consecutive failures that open an endpoint's circuit; while open, its events go to
    #: the retry tiers without a request.
    failure_threshold: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 5
    circuit_open: Duration = Duration(30)  # then one request tries again (half open)
    #: An endpoint failing this many times in a row, for at least pause_after, is paused
    #: (an event says so; postline webhooks resume restarts it).
    pause_after_failures: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 100
    pause_after: Duration = Duration(3600)  # ... and failing for at least this long
    #: The retry tiers (topics postline.webhooks.retry.<tier>; durations).
    tiers: tuple[str, ...] = DEFAULT_WEBHOOK_TIERS
    first_delay: Duration = Duration(30)  # wait before the first retry
    factor: Annotated[float, msgspec.Meta(ge=1.0, le=10.0)] = 3.0  # each wait = previous x this
    max_delay: Duration = Duration(4 * 3600)  # the longest wait between attempts
    jitter: Annotated[float, msgspec.Meta(ge=0.0, le=0.5)] = 0.2  # +/- this fraction
    max_age: Duration = Duration(24 * 3600)  # then the event is a dead letter
    #: A paused endpoint's events wait this long in a tier between checks (a resume
    #: releases them at once).
    paused_hold: Duration = Duration(600)
    #: Messages whose tenant is remembered, for their later events that carry none (a DSN
    #: or complaint at the global bounce domain, a one-click unsubscribe): about 200 bytes
    #: each. Such an event of a message no longer remembered reaches no webhook.
    remember_messages: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)] = 100_000
    #: CA bundle (PEM) to verify endpoints' certificates with, beside nothing else; unset:
    #: the system's trust store.
    ca_file: Path | None = None
    #: Allow endpoints on private, loopback, link-local, CGNAT and reserved addresses (an
    #: installation whose tenants' receivers are inside the same network). Off: SSRF guard.
    allow_private_networks: bool = False
    #: Development: allow http:// (and https://) to 127.0.0.1, ::1 and localhost.
    allow_http_loopback: bool = False
    user_agent: str = "Postline-Webhooks/1"  # the User-Agent of every webhook request

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ValueError("tiers must name at least one tier")
        for tier in self.tiers:
            Duration.parse(tier)
        if not 0.001 <= self.request_timeout <= 300:
            raise ValueError("request_timeout must be between 1ms and 300s")
        if not 0.001 <= self.connect_timeout <= self.request_timeout:
            raise ValueError("connect_timeout must be between 1ms and request_timeout")
        if self.max_age < self.first_delay:
            raise ValueError("max_age must be at least first_delay")


def load(config: Config) -> WebhooksConfig:
    """``[webhooks]`` decoded; a :class:`ConfigError` names the key."""
    section = config.section(SECTION, WebhooksConfig)
    if section.ca_file is not None and not section.ca_file.exists():
        raise ConfigError(config.source, "webhooks.ca_file", f"{section.ca_file} does not exist")
    return section
