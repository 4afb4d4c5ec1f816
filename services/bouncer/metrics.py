"""The bouncer's metrics, declared once with help text an operator can act on.

Labels are bounded: ``type`` (the report kinds), ``class`` (the bounce classes), ``provider``
(``shared.providers`` names), ``via`` (smtp, http), ``reason`` (forged, unattributable; on
the bounce counter: ``shared.bounceclass.reasons.Reason``, a fixed set).
Recipient domains are never a label (unbounded cardinality); providers are.
:class:`TrackingMetrics` is the open and click endpoints' sensor (``tracking/``): ``agent``
(``tracking.agents.Agent``), ``who`` (human, machine), ``endpoint`` (open, click) and its
``reason`` values are fixed sets; tenants and recipients are never labels.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.wire.records import Event, EventKind


class BouncerMetrics:
    """Every bouncer metric, registered on the registry passed in (no global state)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.reports = Counter(
            "postline_bouncer_reports_total",
            "Messages received at the bounce domain, by type (dsn, bounce, complaint, "
            "auto_reply, other) and events (bounced/expired from the deliverer). A jump in dsn "
            "or complaint after a campaign is the first sign of a bad list.",
            ["type"],
            registry=registry,
        )
        self.bounces = Counter(
            "postline_bouncer_bounces_total",
            "Classified failures by class (hard, soft, block, unknown), recipient provider and "
            "reason (the fixed set in docs/bounce-reasons.md). Rising 'block' for one provider "
            "means our reputation there is falling: the reason says which (blocked, "
            "authfailure, badreputation, spamdetected); rising 'unknown' or 'undefined' means "
            "the rule table needs a rule.",
            ["class", "provider", "reason"],
            registry=registry,
        )
        self.complaints = Counter(
            "postline_bouncer_complaints_total",
            "Feedback reports (ARF) received, by provider. Providers throttle senders above "
            "about 0.1% complaints per delivered message: alert on the ratio.",
            ["provider"],
            registry=registry,
        )
        self.unsubscribes = Counter(
            "postline_bouncer_unsubscribes_total",
            "Verified unsubscribes by channel (http one-click, smtp mailto).",
            ["via"],
            registry=registry,
        )
        self.suppressions = Counter(
            "postline_bouncer_suppressions_total",
            "Addresses the bouncer put on the suppression list, by reason.",
            ["reason"],
            registry=registry,
        )
        self.dead_letter_actions = Counter(
            "postline_dead_letter_actions_total",
            "Operators' actions on dead letters (postline dead or the admin API), by action "
            "(redriven, purged, redrive_refused), counted from their audit events. Dead "
            "letters keep coming (postline_records_dead_lettered_total) while none are "
            "redriven or purged: nobody is looking at them; redrive_refused: the fix did not "
            "cover them yet.",
            ["action"],
            registry=registry,
        )
        self.quarantine_actions = Counter(
            "postline_quarantine_actions_total",
            "Operators' actions on quarantined messages (postline quarantine or the admin "
            "API), by action (released, deleted), counted from their audit events. Many "
            "releases: the quarantine band catches wanted mail, raise its lower threshold; "
            "messages held (postline_quarantine_messages) and no actions: nobody reviews them.",
            ["action"],
            registry=registry,
        )
        self.quarantine_messages = Gauge(
            "postline_quarantine_messages",
            "Messages held in the quarantine (postline.quarantine) as this bouncer last read "
            "it, waiting for an operator to release or delete them (postline quarantine list).",
            registry=registry,
        )
        self.suppression_list_size = Gauge(
            "postline_bouncer_suppression_list_size",
            "Addresses on the suppression list as this bouncer last read it (every scope).",
            registry=registry,
        )
        self.dsns_sent = Counter(
            "postline_bouncer_dsns_sent_total",
            "DSNs queued to original senders, by action (failed, expired, and the delayed and "
            "relayed notices asked for with NOTIFY).",
            ["action"],
            registry=registry,
        )
        self.rejected = Counter(
            "postline_bouncer_rejected_reports_total",
            "Reports not acted on: 'forged' (the VERP or unsubscribe HMAC did not verify: "
            "someone is sending fake bounces) or 'unattributable' (no recipient could be "
            "found in the report). A steady 'forged' rate is backscatter or an attack.",
            ["reason"],
            registry=registry,
        )


class TrackingMetrics:
    """Every tracking metric, registered on the registry passed in (no global state)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._opens = Counter(
            "postline_bouncer_opens_total",
            "Open pixels served, by user agent class and who (human, machine: Apple Mail "
            "Privacy Protection, scanners, bots). Machine opens say nothing about readers: "
            "a jump in apple_mpp after a campaign is Apple prefetching, not interest.",
            ["agent", "who"],
            registry=registry,
        )
        self._clicks = Counter(
            "postline_bouncer_clicks_total",
            "Tracked links followed, by user agent class and who (machine: a scanner's user "
            "agent or HEAD, a click seconds after sending, several links at once). Many "
            "machine clicks from scanners are normal for business recipients.",
            ["agent", "who"],
            registry=registry,
        )
        self._refused = Counter(
            "postline_bouncer_tracking_refused_total",
            "Tracking requests answered 404, by endpoint (open, click) and reason: 'forged' "
            "(the token does not verify: altered, truncated or guessed; a steady rate is "
            "someone probing the redirector), 'bad_url' (the link's URL is not http or "
            "https), 'wrong_endpoint' (a pixel token on the click path or the reverse).",
            ["endpoint", "reason"],
            registry=registry,
        )
        self._dropped = Counter(
            "postline_bouncer_tracking_events_dropped_total",
            "Open and click events not published (the redirect or pixel was served all the "
            "same), by reason: 'full' (bouncer.tracking.max_pending events were waiting: the "
            "bus is slow or down), 'bus' (the bus refused them after retries), 'stopped' "
            "(they came after the bouncer finished draining). Any rate means reports miss "
            "opens and clicks.",
            ["reason"],
            registry=registry,
        )
        self._pending = Gauge(
            "postline_bouncer_tracking_events_pending",
            "Open and click events waiting to be published (clicks are held for "
            "bouncer.tracking.burst_window first). Near bouncer.tracking.max_pending: events "
            "are about to be dropped; check the bus.",
            registry=registry,
        )

    def served(self, event: Event) -> None:
        """An opened or clicked event, final (machine decided), about to be published."""
        counter = self._opens if event.kind is EventKind.OPENED else self._clicks
        counter.labels(event.agent, "machine" if event.machine else "human").inc()

    def refused(self, endpoint: str, reason: str) -> None:
        """A request answered 404."""
        self._refused.labels(endpoint, reason).inc()

    def dropped(self, reason: str, count: int = 1) -> None:
        """Events given up."""
        self._dropped.labels(reason).inc(count)

    def pending(self, count: int) -> None:
        """Events waiting now."""
        self._pending.set(count)


class TlsRptMetrics:
    """The TLS-RPT role's metrics (``tlsrpt/``). Labels are fixed sets: ``result``
    (successful, failed, late, invalid), ``via`` (https, mailto, none) and ``outcome``
    (sent, retry, failed, no_rua); domains are never labels."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sessions = Counter(
            "postline_bouncer_tlsrpt_sessions_total",
            "TLS sessions counted for TLS-RPT reports, by result (successful, failed; late: "
            "the event came after its day's counts closed, bouncer.tlsrpt.send_delay; "
            "invalid: no domain). Rising 'failed': recipients' MX hosts fail their MTA-STS "
            "or DANE policies (their reports will say which); 'late': the bouncer lags.",
            ["result"],
            registry=registry,
        )
        self.reports = Counter(
            "postline_bouncer_tlsrpt_reports_total",
            "TLS-RPT report sends by channel (https, mailto; none for a domain without a "
            "_smtp._tls record) and outcome (sent; retry: a send failed and is tried again; "
            "failed: given up after bouncer.tlsrpt.retry_for; no_rua).",
            ["via", "outcome"],
            registry=registry,
        )

    def counted(self, tally: Mapping[str, int]) -> None:
        """Count a committed batch's sessions."""
        for result, count in tally.items():
            self.sessions.labels(result).inc(count)
