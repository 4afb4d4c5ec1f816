"""The bouncer's metrics, declared once with help text an operator can act on.

Labels are bounded: ``type`` (the report kinds), ``class`` (the bounce classes), ``provider``
(``shared.providers`` names), ``via`` (smtp, http), ``reason`` (forged, unattributable; on
the bounce counter: ``shared.bounceclass.reasons.Reason``, a fixed set).
Recipient domains are never a label (unbounded cardinality); providers are.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


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
            "DSNs queued to original senders for failed messages, by action (failed, expired).",
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
