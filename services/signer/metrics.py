"""The signer's metrics, declared once, each with help text saying how to read it.

Labels are bounded: ``result`` (a fixed list below), ``algorithm`` (rsa, ed25519), and
``signing_domain``/``selector`` of configured DKIM keys only (our customers' signing domains, a set
the operator controls; recipient domains are never a label). Registered on the registry the
runtime passes in; no global registry.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.signer.keys import SigningKey

#: ``result`` values of postline_signer_messages_total.
SIGNED = "signed"  # signed with at least one key
UNSIGNED = "unsigned"  # no key, sent unsigned because allow_unsigned is on
FAILED = "failed"  # no key and unsigned not allowed, or the message cannot be signed
SUPPRESSED = "suppressed"  # every recipient was on the suppression list
RESULTS = (SIGNED, UNSIGNED, FAILED, SUPPRESSED)
#: ``result`` values of postline_signer_eight_bit_messages_total (``sevenbit.py``).
CONVERTED = "converted"  # made 7-bit before signing
KEPT_8BIT = "kept"  # still 8-bit

_SIGN_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
_TRACKING_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
_FANOUT_BUCKETS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)


class SignerMetrics:
    """Everything the signer counts, on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "postline_signer_messages_total",
            "Submissions the signer finished, by result (signed, unsigned, failed, "
            "suppressed). 'failed' means a customer's mail was not sent: alert on any rate; "
            "'unsigned' rising means a sending domain lost its key.",
            ["result"],
            registry=registry,
        )
        self.signatures = Counter(
            "postline_signer_signatures_total",
            "DKIM signatures made, by algorithm (rsa, ed25519). With dual signing both rise "
            "together; one flat while the other rises means a selector is missing.",
            ["algorithm"],
            registry=registry,
        )
        self.sign_seconds = Histogram(
            "postline_signer_sign_seconds",
            "Time to DKIM-sign one copy of a message (all its signatures), in a signing "
            "worker. A p99 well above a millisecond for normal mail means the pod's CPUs are "
            "saturated or messages are very large.",
            buckets=_SIGN_BUCKETS,
            registry=registry,
        )
        self.fanout = Histogram(
            "postline_signer_fanout_deliveries",
            "Deliveries produced from one Submission (one per recipient with VERP or bulk, "
            "else one per recipient domain). Large values mean big recipient lists.",
            buckets=_FANOUT_BUCKETS,
            registry=registry,
        )
        self.suppressed = Counter(
            "postline_signer_suppressed_recipients_total",
            "Recipients dropped because they are on the suppression list.",
            registry=registry,
        )
        self.key_age = Gauge(
            "postline_signer_key_age_seconds",
            "Seconds since each DKIM key became valid (its not_before, else its file's "
            "modification time). Rotate keys older than your policy (commonly 6-12 months).",
            ["signing_domain", "selector", "algorithm"],
            registry=registry,
        )
        self.key_expiry = Gauge(
            "postline_signer_key_expiry_seconds",
            "Seconds until each DKIM key's not_after (negative: expired, no longer used; "
            "absent for keys without one). Alert when a domain's last key nears 0.",
            ["signing_domain", "selector", "algorithm"],
            registry=registry,
        )
        self.tracked_messages = Counter(
            "postline_signer_tracked_messages_total",
            "Messages whose copies got open and click tracking (links rewritten, pixel "
            "added), counted once per message however many recipients it has.",
            registry=registry,
        )
        self.tracked_links = Counter(
            "postline_signer_tracked_links_total",
            "Links rewritten for click tracking, counted once per message (each recipient's "
            "copy has the same links with its own tokens).",
            registry=registry,
        )
        self.tracking_skipped = Counter(
            "postline_signer_tracking_skipped_total",
            "Messages that asked for tracking but went untouched, by reason (no_host, "
            "bad_host, too_large, dkim_signed, signed_content, unparseable, unknown_charset, "
            "undecodable); each has a 'tracking' event. no_host or bad_host means a "
            "configuration to fix; the others are the senders' messages.",
            ["reason"],
            registry=registry,
        )
        self.tracking_seconds = Histogram(
            "postline_signer_tracking_seconds",
            "Time to rewrite every copy of one tracked message (on the signer's event loop, "
            "before signing). Large values come from large HTML times many recipients.",
            buckets=_TRACKING_BUCKETS,
            registry=registry,
        )
        self.eight_bit = Counter(
            "postline_signer_eight_bit_messages_total",
            "Messages with 8-bit content, by result: 'converted' (made 7-bit before signing, "
            "deliverable to any MX) or 'kept' (still 8-bit: SMTPUTF8 headers, an existing "
            "DKIM signature, signed content; bounced 5.6.3 by the rare MX without 8BITMIME). "
            "The signed event says why a message was kept.",
            ["result"],
            registry=registry,
        )
        self.key_reload_errors = Counter(
            "postline_signer_key_reload_errors_total",
            "Key directory reloads refused because a file was bad; the previous keys stay "
            "in use. The log names the file.",
            registry=registry,
        )

    def observe_keys(self, keys: Iterable[SigningKey], now: float | None = None) -> None:
        """Set the per-selector gauges to the current key set (dropping removed keys)."""
        now = time.time() if now is None else now
        self.key_age.clear()
        self.key_expiry.clear()
        for key in keys:
            labels = (key.domain, key.selector, key.algorithm)
            since = key.not_before or _mtime(key)
            # A file written by a host whose clock runs ahead (or a not_before in the future
            # on a key already in use) is not a key from the future: its age is zero.
            self.key_age.labels(*labels).set(max(0.0, now - since))
            if key.not_after is not None:
                self.key_expiry.labels(*labels).set(key.not_after - now)


def _mtime(key: SigningKey) -> float:
    if key.path is None:
        return time.time()
    try:
        return key.path.stat().st_mtime
    except OSError:
        return time.time()
