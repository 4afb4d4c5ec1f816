"""Compromised-account detection: a credential's sending against its own baseline.

A stolen password shows itself as a sudden change in what its credential sends: many more
messages than usual, many more recipients per message, many more recipient domains, the
content scanner calling much of it spam, or many of its recipients not existing. Each
credential's sending is counted per bucket of time (``[reputation.credentials] bucket``,
an hour by default; the stage clock, the newest event time, says which bucket is current)
and the current bucket is compared with the credential's **baseline**: the buckets in
which it sent during the ``baseline_buckets`` before the current one (a week of hours by
default). Quiet buckets are left out of the baseline, so a sender that mails once a week
is compared with its usual weekly send, not with a week's average of near zero. The rules
(simple statistics, each explained in the hold's reason):

- **volume**: messages this bucket >= ``volume_factor`` x the baseline's mean per bucket,
  and >= ``min_messages`` (2 messages yesterday and 20 today is no attack);
- **recipients per message**: >= ``recipients_factor`` x the baseline's, with at least
  ``min_recipients`` recipients this bucket;
- **recipient domains**: distinct domains this bucket >= ``domains_factor`` x the
  baseline's mean, and >= ``min_domains``;
- **spam**: spam verdicts >= ``spam_share`` of this bucket's scanned messages, and **hard
  bounces** >= ``hard_bounce_share`` of its recipients, once the bucket holds
  ``share_min_messages`` scanned (resp. accepted) messages: these need no baseline.

A credential with no baseline (new, or silent for the whole baseline) has nothing to rise
above; taking its baseline as zero would hold every new customer at its first
``min_messages``. Its baseline is taken as the rule's minimum instead (``min_messages``
messages, ``min_domains`` domains, one recipient per message), so only the absolute limits
apply: ``volume_factor x min_messages`` messages (500 by default) in its first bucket, and
so on. Pure functions on frozen records; the engine counts the events and publishes.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from services.reputation.config import CredentialsConfig
from shared.wire.records import CredentialBucket, CredentialWindow

#: The scanner's verdicts that count as spam (``scanned`` events' ``classification``).
SPAM_VERDICTS = frozenset({"rejected", "soft_rejected", "quarantined"})
#: Distinct recipient domains remembered for the current bucket: past it the count stops
#: growing, far above any sensible ``min_domains`` (and the record stays small).
DOMAINS_KEPT = 2000

#: The signals, as named in a hold's figures and metrics.
VOLUME = "volume"
RECIPIENTS = "recipients_per_message"
DOMAINS = "domains"
SPAM = "spam"
HARD_BOUNCES = "hard_bounces"


def index_of(at: float, bucket: float) -> int:
    """The bucket number (Unix time // bucket length) of a time."""
    return int(at // bucket)


def empty(bucket: float) -> CredentialWindow:
    """A credential's window before anything was counted."""
    return CredentialWindow(bucket=bucket)


@dataclass(frozen=True)
class Sent:
    """What one event adds to a credential's bucket."""

    messages: int = 0
    recipients: int = 0
    domains: tuple[str, ...] = ()
    scanned: int = 0
    spam: int = 0
    hard_bounces: int = 0


def count(window: CredentialWindow, index: int, sent: Sent) -> CredentialWindow:
    """``window`` with ``sent`` added to bucket ``index``. Recipient domains are counted
    only in the newest bucket (a late event of an earlier bucket adds its other counts):
    telling distinct domains apart needs their names, kept for one bucket only."""
    newest = window.buckets[-1].index if window.buckets else None
    is_newest = newest is None or index >= newest
    domains = window.newest_domains if newest is not None and index == newest else ()
    if is_newest:
        known = set(domains)
        fresh = [d for d in dict.fromkeys(sent.domains) if d not in known]
        domains = domains + tuple(fresh[: max(0, DOMAINS_KEPT - len(domains))])
    else:
        domains = window.newest_domains  # the newest bucket's, unchanged
    out: list[CredentialBucket] = []
    placed = False
    for bucket in window.buckets:
        if not placed and bucket.index == index:
            out.append(_plus(bucket, sent, len(domains) if is_newest else bucket.domains))
            placed = True
            continue
        if not placed and bucket.index > index:
            out.append(_plus(CredentialBucket(index=index), sent, 0))
            placed = True
        out.append(bucket)
    if not placed:
        out.append(_plus(CredentialBucket(index=index), sent, len(domains)))
    return msgspec.structs.replace(window, buckets=tuple(out), newest_domains=domains)


def _plus(bucket: CredentialBucket, sent: Sent, domains: int) -> CredentialBucket:
    return CredentialBucket(
        index=bucket.index,
        messages=bucket.messages + sent.messages,
        recipients=bucket.recipients + sent.recipients,
        domains=domains,
        scanned=bucket.scanned + sent.scanned,
        spam=bucket.spam + sent.spam,
        hard_bounces=bucket.hard_bounces + sent.hard_bounces,
    )


def prune(window: CredentialWindow, current: int, baseline_buckets: int) -> CredentialWindow:
    """The buckets still inside the baseline of bucket ``current`` (and ``current``)."""
    start = current - baseline_buckets
    if not window.buckets or window.buckets[0].index >= start:
        return window
    kept = tuple(b for b in window.buckets if b.index >= start)
    domains = window.newest_domains if kept and kept[-1] == window.buckets[-1] else ()
    return msgspec.structs.replace(window, buckets=kept, newest_domains=domains)


def restart(window: CredentialWindow, current: int) -> CredentialWindow:
    """An operator released the credential: the current bucket starts afresh (or the burst
    that caused the hold would hold it again at once) and the history before it stays its
    baseline."""
    kept = tuple(b for b in window.buckets if b.index < current)
    return msgspec.structs.replace(
        window, buckets=kept, newest_domains=(), held=False, held_since=0.0, why=""
    )


@dataclass(frozen=True)
class Baseline:
    """A credential's usual sending: means over the buckets it sent in."""

    buckets: int  # how many buckets of the baseline it sent in (0: no baseline)
    messages: float  # per bucket
    recipients_per_message: float
    domains: float  # distinct recipient domains per bucket


def baseline(window: CredentialWindow, current: int, config: CredentialsConfig) -> Baseline:
    """The baseline of bucket ``current``: the ``baseline_buckets`` before it, quiet ones
    left out; without any, each rule's minimum (see the module docstring)."""
    start = current - config.baseline_buckets
    active = [b for b in window.buckets if start <= b.index < current and b.messages > 0]
    if not active:
        return Baseline(0, float(config.min_messages), 1.0, float(config.min_domains))
    messages = sum(b.messages for b in active)
    return Baseline(
        buckets=len(active),
        messages=messages / len(active),
        recipients_per_message=sum(b.recipients for b in active) / messages,
        domains=sum(b.domains for b in active) / len(active),
    )


@dataclass(frozen=True)
class Hold:
    """Why a credential is held: the signals that fired, in words and in figures."""

    signals: tuple[str, ...]
    why: str
    figures: dict[str, float]


def judge(window: CredentialWindow, current: int, config: CredentialsConfig) -> Hold | None:
    """Whether bucket ``current`` of ``window`` holds the credential (``None``: no)."""
    now = next((b for b in window.buckets if b.index == current), None)
    if now is None:
        return None
    base = baseline(window, current, config)
    span = _span(config.bucket)
    known = f"its baseline of {{:.1f}} (mean of {base.buckets} active {span} buckets)"
    unknown = "no baseline yet: the absolute limit {:.0f}"
    fired: list[tuple[str, str]] = []

    def rise(signal: str, value: float, usual: float, factor: float, minimum: bool) -> None:
        if not minimum or value < factor * usual:
            return
        times = value / usual if usual > 0 else 0.0
        against = known.format(usual) if base.buckets else unknown.format(factor * usual)
        said = f"{_WORDS[signal]} {_number(value)} this {span}, {times:.1f}x {against}"
        fired.append((signal, said))

    enough = now.messages >= config.min_messages
    rise(VOLUME, now.messages, base.messages, config.volume_factor, enough)
    per_message = now.recipients / now.messages if now.messages else 0.0
    rise(
        RECIPIENTS,
        per_message,
        base.recipients_per_message,
        config.recipients_factor,
        now.recipients >= config.min_recipients,
    )
    enough = now.domains >= config.min_domains
    rise(DOMAINS, now.domains, base.domains, config.domains_factor, enough)
    spam = now.spam / now.scanned if now.scanned else 0.0
    if now.scanned >= config.share_min_messages and spam >= config.spam_share:
        fired.append((SPAM, f"spam verdicts {spam:.0%} of {now.scanned} scanned this {span}"))
    # Bounces are per recipient: their share is of the recipients (a message of an older
    # writer, without its recipient count, counts as one).
    sent_to = max(now.recipients, now.messages)
    bounces = now.hard_bounces / sent_to if sent_to else 0.0
    if now.messages >= config.share_min_messages and bounces >= config.hard_bounce_share:
        said = f"hard bounces {bounces:.0%} of {sent_to} recipients this {span}"
        fired.append((HARD_BOUNCES, said))
    if not fired:
        return None
    figures = {
        "messages": float(now.messages),
        "recipients": float(now.recipients),
        "recipients_per_message": per_message,
        "domains": float(now.domains),
        "scanned": float(now.scanned),
        "spam": float(now.spam),
        "hard_bounces": float(now.hard_bounces),
        "spam_share": spam,
        "hard_bounce_share": bounces,
        "baseline_buckets": float(base.buckets),
        "baseline_messages": base.messages,
        "baseline_recipients_per_message": base.recipients_per_message,
        "baseline_domains": base.domains,
        "bucket_seconds": float(config.bucket),
    }
    return Hold(tuple(s for s, _ in fired), "; ".join(w for _, w in fired), figures)


_WORDS = {VOLUME: "messages", RECIPIENTS: "recipients per message", DOMAINS: "recipient domains"}


def _number(value: float) -> str:
    """A count as a count, a mean to one decimal."""
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


def _span(seconds: float) -> str:
    """A bucket length in words: ``1h``, ``30m``, ``1d``."""
    if seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 60)}m"


class Owners:
    """The credential of recent messages, by message id (first in, first out; ``size`` at
    most): hard bounces name the message, not the credential that sent it."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._seen: dict[str, str] = {}

    def remember(self, message_id: str, login: str) -> None:
        """Note that ``message_id`` was sent with ``login``."""
        if self._size <= 0 or not message_id or message_id in self._seen:
            return
        if len(self._seen) >= self._size:
            del self._seen[next(iter(self._seen))]
        self._seen[message_id] = login

    def lookup(self, message_id: str) -> str | None:
        """The credential ``message_id`` was sent with, when remembered."""
        return self._seen.get(message_id)
