"""Send-at: a message delivered no earlier than a time its sender chose, and how it waits.

A sender asks for it with the HTTP API's ``send_at`` (an RFC 3339 time) or, over SMTP, the
header ``X-Postline-Deliver-After`` (an RFC 3339 time, or a delay in seconds from acceptance),
at most :data:`MAX_AHEAD` ahead: the 72 hours SendGrid's ``send_at`` and Mailgun's
``o:deliverytime`` allow, long enough for "send at 9:00 in the recipient's morning" and short
of the 3 days a deferred message is kept for (``signer.max_message_age``). A time up to
:data:`SKEW` in the past counts as now (a client's clock a little behind ours); earlier is
refused, as is anything past the limit.

The message is accepted and signed at once (250 and 202 mean durable, as always); the signer
gives its Deliveries ``send_at`` and puts them straight into a retry tier, and the
deliverer's retry loop (``services/deliverer/retry.py``) releases them when due. A retry
tier partition is FIFO and its loop holds the partition at a record that is not yet due, so
a record must never wait longer than its tier's own length, or it would hold back the
ordinary retries behind it: a long wait is cut into passes (:func:`next_pass`), each in the
longest tier not longer than what remains and no longer than that tier, the record going
from pass to pass until its time has come. 72 hours in the default tiers is twelve 6h passes
and a few short ones. Expiry counts from the send-at, not from acceptance.

This module owns the parsing, the bounds and the pass arithmetic; it does not publish.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from shared.config import Config, Duration
from shared.wire.topics import DEFAULT_RETRY_TIERS

#: The furthest ahead a message may be scheduled (SendGrid's and Mailgun's limit: 72 hours).
MAX_AHEAD = 72 * 3600.0
#: How far in the past a send-at may be and still mean "now" (clock skew between the client
#: and us, and the time the request took to arrive).
SKEW = 60.0
#: The SMTP header that asks for it (removed before signing, like every ``X-Postline-*``).
HEADER = "X-Postline-Deliver-After"

_SECONDS = re.compile(r"^\d{1,9}(\.\d{1,6})?$")

T = TypeVar("T")


class SendAtError(ValueError):
    """A send-at that cannot be used: malformed, in the past or too far ahead (the text
    says which, for the 422 or 550 reply)."""


def parse_header(value: str, now: float) -> float:
    """The epoch time ``X-Postline-Deliver-After: value`` asks for, at ``now``: an RFC 3339
    date-time with its offset (``2025-06-01T09:00:00+02:00``) or a delay in seconds
    (``3600``). Raises :class:`SendAtError`; the range is :func:`check`'s business."""
    text = value.strip()
    if _SECONDS.match(text):
        return now + float(text)
    return parse_time(text)


def parse_time(text: str) -> float:
    """An RFC 3339 date-time (section 5.6: a full date, a time and an offset) as epoch
    seconds; :class:`SendAtError` when it is not one."""
    if "T" not in text.upper() and " " not in text:
        raise SendAtError(f"{text!r} is neither an RFC 3339 date-time nor a number of seconds")
    try:
        when = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise SendAtError(
            f"{text!r} is neither an RFC 3339 date-time nor a number of seconds"
        ) from exc
    return aware_timestamp(when)


def aware_timestamp(when: datetime) -> float:
    """``when`` as epoch seconds; a time without an offset is refused (RFC 3339 5.6 requires
    one, and guessing the sender's time zone would send the mail hours early or late)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise SendAtError("a send-at time needs a time zone offset (e.g. Z or +02:00)")
    return when.timestamp()


def check(send_at: float, now: float) -> float:
    """``send_at`` as it will be kept: 0 (at once) when it is not later than ``now``, itself
    when within :data:`MAX_AHEAD`. Raises :class:`SendAtError` when it is more than
    :data:`SKEW` in the past or more than :data:`MAX_AHEAD` ahead."""
    if send_at < now - SKEW:
        raise SendAtError(f"send-at is {now - send_at:.0f}s in the past")
    if send_at > now + MAX_AHEAD:
        raise SendAtError(f"send-at is more than {MAX_AHEAD / 3600:.0f}h ahead")
    return send_at if send_at > now else 0.0


def tier_lengths(tiers: Sequence[str]) -> list[tuple[float, str]]:
    """``(seconds, name)`` of each tier name (``"5m"``), shortest first."""
    return sorted((float(Duration.parse(name)), name) for name in tiers)


def next_pass(tiers: Sequence[tuple[float, T]], at: float, send_at: float) -> tuple[T, float]:
    """The tier (of ``tiers``, ``(seconds, tier)`` shortest first) a Delivery held until
    ``send_at`` waits in from ``at``, and when that pass ends (its ``not_before``): the
    longest tier not longer than what remains (the shortest when all are longer), for no
    longer than that tier (see the module docstring)."""
    if not tiers:
        raise ValueError("no retry tiers")
    remaining = max(0.0, send_at - at)
    seconds, chosen = tiers[0]
    for length, tier in tiers:
        if length <= remaining:
            seconds, chosen = length, tier
    return chosen, at + min(remaining, seconds)


def retry_tiers(config: Config) -> tuple[str, ...]:
    """The retry tiers the deliverer reads (``deliverer.retry.tiers``, one file for every
    stage), which the signer writes send-at Deliveries into. Checked by the deliverer when
    it starts; a value that is not a list of durations here is a :class:`ValueError`."""
    retry = config.core.deliverer.get("retry", {})
    tiers = retry.get("tiers", DEFAULT_RETRY_TIERS) if isinstance(retry, dict) else None
    if not isinstance(tiers, list | tuple) or not tiers:
        raise ValueError(f"deliverer.retry.tiers must be a list of durations, got {tiers!r}")
    names = tuple(str(t) for t in tiers)
    tier_lengths(names)  # raises ValueError naming a bad one
    return names
