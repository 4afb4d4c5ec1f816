"""The deliverer's metrics, declared once with help text an operator can act on.

Owns: :class:`DelivererMetrics`, registered on the registry the runtime passes in (no global
registry). Labels are bounded: ``provider`` comes from :func:`shared.providers.provider_for_host`
and is never the recipient domain; ``result`` is an :class:`~services.deliverer.outcome.Outcome`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.runtime.tenantsensor import TenantSensor

_ATTEMPT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_DELAY_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 3 * 86400)
_DNS_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)


class DelivererMetrics:
    """Every deliverer metric on one registry."""

    def __init__(self, registry: CollectorRegistry, tenants: TenantSensor | None = None) -> None:
        #: Per-tenant counts, when the operator opted in (``metrics.tenant_label``).
        self.tenants = tenants if tenants is not None else TenantSensor.off()
        self.attempts = Counter(
            "postline_deliverer_attempts_total",
            "Recipient delivery attempts by provider and result (delivered, deferred, bounced). "
            "A rising deferred share for one provider usually means it throttles us; a rising "
            "bounced share means list quality or a blocklisting.",
            ["provider", "result"],
            registry=registry,
        )
        self.tls_sessions = Counter(
            "postline_deliverer_tls_sessions_total",
            "Connection attempts to MX hosts by what governed their transport security "
            "(security: none, opportunistic, mta-sts, dane, required), whether the peer's "
            "certificate was verified, and the RFC 8460 result (ok, or the failure type such "
            "as starttls-not-supported or certificate-host-mismatch). Failures under mta-sts "
            "or dane mean mail deferred (or, for an MTA-STS testing policy, sent anyway).",
            ["security", "verified", "result"],
            registry=registry,
        )
        self.delivered_by_tls = Counter(
            "postline_deliverer_delivered_by_tls_total",
            "Recipients delivered, by the transport security of the session they went over "
            "(none, opportunistic, mta-sts, dane, required) and whether the peer was verified.",
            ["security", "verified"],
            registry=registry,
        )
        self.tls_required_failures = Counter(
            "postline_deliverer_tls_required_failures_total",
            "Recipients deferred because policy requires TLS and the MX did not offer it or the "
            "handshake failed (never sent in plaintext). Any sustained rate means a destination "
            'or provider with tls = "required" cannot be reached securely: check its MX hosts '
            "and certificates, or the policy.",
            ["provider"],
            registry=registry,
        )
        self.replies = Counter(
            "postline_deliverer_smtp_replies_total",
            "Final SMTP replies per recipient by provider and reply class (2xx, 4xx, 5xx; "
            "'none' when the connection failed before a reply). Compare 4xx to 2xx per provider.",
            ["provider", "reply_class"],
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "postline_deliverer_attempt_seconds",
            "Time of one delivery attempt (one SMTP transaction, connection setup included when "
            "a new connection was needed). A slow p99 for one provider points at tarpitting.",
            ["provider"],
            buckets=_ATTEMPT_BUCKETS,
            registry=registry,
        )
        self.delivery_delay = Histogram(
            "postline_deliverer_delivery_delay_seconds",
            "End-to-end delay from acceptance by ingest to a 2xx from the recipient's MX, by "
            "provider and lane (transactional, bulk). The p50 should be seconds; a long tail is "
            "retries. A bulk backlog shows in the bulk lane only: a transactional tail that "
            "grows with it means the lanes are not keeping them apart.",
            ["provider", "lane"],
            buckets=_DELAY_BUCKETS,
            registry=registry,
        )
        self.connections = Gauge(
            "postline_deliverer_connections",
            "Open SMTP connections per provider. Pinned at a policy's max_connections means that "
            "destination is the bottleneck.",
            ["provider"],
            registry=registry,
        )
        self.window = Gauge(
            "postline_deliverer_window_deliveries",
            "Deliveries held in memory (in flight or waiting for a connection), all domains, by "
            "lane (transactional, bulk). Near the lane's max_in_flight (bulk_max_in_flight) "
            "means that lane is saturated; its backlog stays on its topic.",
            ["lane"],
            registry=registry,
        )
        self.throttled = Gauge(
            "postline_deliverer_throttled_destinations",
            "Destinations (a domain, or a provider with its own policy) currently throttled after "
            "421 or 4.7.x rate-limit replies, by provider. Non-zero for hours means our "
            "reputation or volume needs attention.",
            ["provider"],
            registry=registry,
        )
        self.throttle_changes = Counter(
            "postline_deliverer_throttle_changes_total",
            "Adaptive throttling steps by provider and action (throttle: concurrency and rate "
            "cut and the queue suspended; ramp: one step back up; recover: back to policy).",
            ["provider", "action"],
            registry=registry,
        )
        self.shaped = Counter(
            "postline_deliverer_shaped_total",
            "Deliveries moved to a retry tier without an attempt, by reason (window_full: the "
            "domain's in-memory window was full; throttled: the domain is suspended; paused and "
            "warmup_allowance: held at admission, see postline_deliverer_held_total).",
            ["reason"],
            registry=registry,
        )
        self.held = Counter(
            "postline_deliverer_held_total",
            "Deliveries held in a retry tier without an attempt, by reason: paused_tenant and "
            "paused_domain (the sender is paused; held until resumed or expired), "
            "warmup_allowance (every address of the source pool used its warm-up allowance for "
            "the day and the pool waits). A steady paused rate is a paused sender's queue "
            "cycling; it ends with a resume or with the messages' expiry.",
            ["reason"],
            registry=registry,
        )
        # Source addresses are the ones in [pools] and deliverer.source_pools ("os" when the
        # OS picks): the config bounds the label.
        self.source_attempts = Counter(
            "postline_deliverer_source_attempts_total",
            "Recipient delivery attempts by source address (os: not bound to one), provider "
            "and result. Compare the deferred share of the addresses of one pool: one that "
            "stands out is throttled or blocklisted on its own.",
            ["source", "provider", "result"],
            registry=registry,
        )
        # reason: shared.bounceclass.reasons.Reason, a fixed set (never the reply text).
        self.failures = Counter(
            "postline_deliverer_failures_total",
            "Deferred and bounced recipients by provider, result and reason (the fixed set in "
            "docs/bounce-reasons.md: userunknown, mailboxfull, blocked, ratelimited...). A "
            "rising blocked, badreputation or authfailure share at one provider is about us, "
            "not the list; userunknown is list quality.",
            ["provider", "result", "reason"],
            registry=registry,
        )
        self.warmup_left = Gauge(
            "postline_deliverer_warmup_allowance_left",
            "Recipients a warming source address may still send to a provider today, as this "
            "deliverer sees it (the reputation stage's state and its own count). At zero for "
            "every address of a pool, its mail waits for the next UTC day or overflows.",
            ["source", "provider"],
            registry=registry,
        )
        self.warmup_sent = Gauge(
            "postline_deliverer_warmup_sent_today",
            "Recipients counted today against a warming source address's allowance with a "
            "provider (the larger of the reputation stage's count and this process's).",
            ["source", "provider"],
            registry=registry,
        )
        self.warmup_overflow = Counter(
            "postline_deliverer_warmup_overflow_total",
            "Deliveries sent from a pool's overflow pool because every address of the pool "
            "(the label) had used its warm-up allowance for the day.",
            ["pool"],
            registry=registry,
        )
        self.operator = Counter(
            "postline_deliverer_queue_operator_total",
            "Deliveries an operator's queue action acted on in this replica (postline queue, "
            "the admin API), by action: flushed (released from a retry tier before their "
            "time), bounced and deleted (recipients ended), rewritten (retry tier records "
            "written again further on while a flush, bounce or delete looked past them).",
            ["action"],
            registry=registry,
        )
        self.queue_actions = Counter(
            "postline_deliverer_queue_actions_total",
            "Operator queue actions (postline.control) this replica applied, by verb "
            "(queue_suspend, queue_flush, queue_bounce, queue_delete, throttle_cancel). Every "
            "replica applies each action once: the rate is the operators' times the replicas.",
            ["verb"],
            registry=registry,
        )
        self.suspensions = Gauge(
            "postline_deliverer_queue_suspensions",
            "Operator suspensions in force in this replica, by target kind (domain, provider, "
            "tenant, source). Suspended mail waits in the retry tiers without attempts; one "
            "left in force by mistake shows here (postline queue suspended lists them).",
            ["kind"],
            registry=registry,
        )
        self.snapshot_failures = Counter(
            "postline_deliverer_queue_snapshot_failures_total",
            "Live queue state snapshots (postline.queue.live) this replica could not publish. "
            "While they fail, postline queue summary shows this replica's last state, then "
            "none.",
            registry=registry,
        )
        self.retries = Counter(
            "postline_deliverer_retries_scheduled_total",
            "Deliveries sent to a retry tier, by tier. Growth in the long tiers means mail that "
            "will probably expire.",
            ["tier"],
            registry=registry,
        )
        self.expired = Counter(
            "postline_deliverer_expired_total",
            "Recipients that expired (deferred past the maximum message age) and will bounce.",
            registry=registry,
        )
        self.mx_lookups = Counter(
            "postline_deliverer_mx_lookups_total",
            "MX resolutions by result (ok, implicit, null_mx, nxdomain, temporary), cache hits "
            "included. A "
            "rising temporary rate means the resolver is failing.",
            ["result"],
            registry=registry,
        )
        self.mx_lookup_seconds = Histogram(
            "postline_deliverer_mx_lookup_seconds",
            "Time to resolve a domain's MX hosts and their addresses (near zero when cached; "
            "seconds mean a slow resolver).",
            buckets=_DNS_BUCKETS,
            registry=registry,
        )


def source_label(address: str) -> str:
    """The ``source`` label of a local address ("" = the OS's choice: ``os``)."""
    return address or "os"


def reply_class(code: int | None) -> str:
    """The bounded ``reply_class`` label of a reply code."""
    if code is None or not 200 <= code <= 599:
        return "none"
    return f"{code // 100}xx"
