"""Query helpers and the panels of each stage's row on the per-stage dashboard.

Owns the per-stage panels (every metric a stage exports appears here) and the PromQL helpers
the dashboards share; ``gen_dashboards.py`` assembles and writes the dashboards.
"""

from __future__ import annotations

from grafana import NS, RATE, Panel, panel, row

KEY = "signing_domain, selector, algorithm"


def rate(metric: str, matchers: str = "", by: str = "") -> str:
    """``sum [by (...)] (rate(metric{namespace, matchers}[$__rate_interval]))``."""
    sel = ", ".join(m for m in (NS, matchers) if m)
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{sel}}}[{RATE}]))"


def quantiles(metric: str, by: str = "") -> list[tuple[str, str]]:
    """p50, p90 and p99 queries of a histogram (``by``: extra grouping label)."""
    extra = f", {by}" if by else ""
    legend = f"{{{{{by}}}}} " if by else ""
    return [
        (
            f"histogram_quantile({q}, sum by (le{extra}) (rate({metric}_bucket{{{NS}}}[{RATE}])))",
            f"{legend}p{int(q * 100)}",
        )
        for q in (0.5, 0.9, 0.99)
    ]


def ingest_panels() -> list[Panel]:
    """Ingest's metrics."""
    return [
        row("Ingest"),
        panel(
            "Messages by result and check",
            "ops",
            [(rate("postline_ingest_messages_total", by="result, check"), "{{result}} {{check}}")],
        ),
        panel(
            "Open SMTP sessions",
            "short",
            [(f"sum by (listener) (postline_ingest_sessions_active{{{NS}}})", "{{listener}}")],
        ),
        panel(
            "Sessions ended",
            "ops",
            [
                (
                    rate("postline_ingest_sessions_total", by="listener, result"),
                    "{{listener}} {{result}}",
                )
            ],
        ),
        panel(
            "TLS handshakes and AUTH failures",
            "ops",
            [
                (rate("postline_ingest_tls_sessions_total", by="version"), "{{version}}"),
                (rate("postline_ingest_auth_failures_total"), "AUTH failures"),
            ],
        ),
        panel(
            "Rejection reports dropped (queue full)",
            "ops",
            [(rate("postline_ingest_rejection_events_dropped_total"), "dropped")],
        ),
        panel("Handoff to the bus", "s", quantiles("postline_ingest_handoff_seconds")),
        panel(
            "Message bytes held in memory",
            "bytes",
            [(f"max(postline_ingest_buffered_bytes{{{NS}}})", "busiest ingest")],
        ),
        panel("Message size", "bytes", quantiles("postline_ingest_message_size_bytes")),
        panel("Recipients per message", "short", quantiles("postline_ingest_message_recipients")),
        panel(
            "Sending API requests by endpoint and status",
            "reqps",
            [
                (
                    rate("postline_ingest_api_requests_total", by="endpoint, status"),
                    "{{endpoint}} {{status}}",
                )
            ],
        ),
        panel(
            "Sending API answer time",
            "s",
            quantiles("postline_ingest_api_request_seconds", by="endpoint"),
        ),
        panel(
            "Sending API Idempotency-Key outcomes",
            "ops",
            [(rate("postline_ingest_api_idempotency_total", by="outcome"), "{{outcome}}")],
        ),
        panel(
            "Content scanner verdicts",
            "ops",
            [(rate("postline_ingest_scans_total", by="result"), "{{result}}")],
            description="Messages through rspamd at the end of DATA, per result. Any "
            "'unavailable' means mail is going out unscanned (on_failure = open) or being "
            "deferred (closed): look at the scanner.",
        ),
        panel("Content scan time", "s", quantiles("postline_ingest_scan_seconds")),
    ]


def limits_panels() -> list[Panel]:
    """The limiter's metrics (shared/limits: any stage that checks limits, ingest today)."""
    return [
        row("Limits"),
        panel(
            "Limit checks Redis did not answer",
            "ops",
            [(rate("postline_limits_redis_failures_total", by="action"), "{{action}}")],
            description="local: decided in process (fail-open); refused: 451 (fail-closed).",
        ),
        panel("Limit check time", "s", quantiles("postline_limits_check_seconds", "backend")),
    ]


def tenant_panels() -> list[Panel]:
    """Messages per tenant (only exported with ``metrics.tenant_label = true``)."""
    return [
        row("Tenants"),
        panel(
            "Messages per tenant by stage and result",
            "ops",
            [
                (
                    rate("postline_tenant_messages_total", by="tenant, stage, result"),
                    "{{tenant}} {{stage}} {{result}}",
                )
            ],
            description="Empty unless metrics.tenant_label = true (one series per tenant, "
            "stage and result). A tenant whose bounced or rejected share stands out is the "
            "one to look at.",
        ),
    ]


def signer_panels() -> list[Panel]:
    """The signer's metrics."""
    key_labels = "{{signing_domain}} {{selector}} {{algorithm}}"
    return [
        row("Signer"),
        panel(
            "Messages by result",
            "ops",
            [(rate("postline_signer_messages_total", by="result"), "{{result}}")],
        ),
        panel(
            "Signatures and suppressed recipients",
            "ops",
            [
                (rate("postline_signer_signatures_total", by="algorithm"), "{{algorithm}}"),
                (rate("postline_signer_suppressed_recipients_total"), "suppressed recipients"),
            ],
        ),
        panel("Signing time", "s", quantiles("postline_signer_sign_seconds")),
        panel("Fan-out per submission", "short", quantiles("postline_signer_fanout_deliveries")),
        panel(
            "DKIM key age",
            "s",
            [
                (
                    f"max by ({KEY}) (postline_signer_key_age_seconds{{{NS}}})",
                    key_labels,
                )
            ],
        ),
        panel(
            "DKIM key expiry",
            "s",
            [
                (
                    f"min by ({KEY}) (postline_signer_key_expiry_seconds{{{NS}}})",
                    key_labels,
                )
            ],
        ),
        panel(
            "Key reload errors",
            "short",
            [(f"sum(increase(postline_signer_key_reload_errors_total{{{NS}}}[1h]))", "errors")],
        ),
        panel(
            "Open and click tracking",
            "ops",
            [
                (rate("postline_signer_tracked_messages_total"), "tracked messages"),
                (rate("postline_signer_tracked_links_total"), "tracked links"),
                (
                    rate("postline_signer_tracking_skipped_total", by="reason"),
                    "untouched: {{reason}}",
                ),
            ],
            description="Messages that asked for tracking: rewritten, and their links; or "
            "sent untouched, by reason (each with a 'tracking' event). no_host or bad_host "
            "is a setting to fix.",
        ),
        panel("Tracking rewrite time", "s", quantiles("postline_signer_tracking_seconds")),
        panel(
            "8-bit mail made 7-bit",
            "ops",
            [(rate("postline_signer_eight_bit_messages_total", by="result"), "{{result}}")],
            description="Messages with 8-bit content: converted to quoted-printable or "
            "base64 before signing, or kept 8-bit (the signed event says why; an MX "
            "without 8BITMIME bounces those with 5.6.3).",
        ),
    ]


def deliverer_panels() -> list[Panel]:
    """The deliverer's metrics."""
    return [
        row("Deliverer"),
        panel(
            "Attempts by provider and result",
            "ops",
            [
                (
                    rate("postline_deliverer_attempts_total", by="provider, result"),
                    "{{provider}} {{result}}",
                )
            ],
        ),
        panel(
            "Failures by reason",
            "ops",
            [
                (
                    rate("postline_deliverer_failures_total", by="result, reason"),
                    "{{result}} {{reason}}",
                )
            ],
            description="Deferred and bounced recipients by reason (docs/bounce-reasons.md). "
            "A rising blocked, badreputation or authfailure share is about our reputation; "
            "userunknown is list quality.",
        ),
        panel(
            "SMTP replies by class",
            "ops",
            [
                (
                    rate("postline_deliverer_smtp_replies_total", by="provider, reply_class"),
                    "{{provider}} {{reply_class}}",
                )
            ],
        ),
        panel(
            "Attempt time by provider (p90)",
            "s",
            [
                (
                    f"histogram_quantile(0.9, sum by (le, provider) (rate("
                    f"postline_deliverer_attempt_seconds_bucket{{{NS}}}[{RATE}])))",
                    "{{provider}}",
                )
            ],
        ),
        panel(
            "Delivery delay by provider (p90)",
            "s",
            [
                (
                    f"histogram_quantile(0.9, sum by (le, provider) (rate("
                    f"postline_deliverer_delivery_delay_seconds_bucket{{{NS}}}[{RATE}])))",
                    "{{provider}}",
                )
            ],
        ),
        panel(
            "Connections and throttled destinations",
            "short",
            [
                (
                    f"sum by (provider) (postline_deliverer_connections{{{NS}}})",
                    "{{provider}} conns",
                ),
                (
                    f"sum by (provider) (postline_deliverer_throttled_destinations{{{NS}}})",
                    "{{provider}} throttled",
                ),
            ],
        ),
        panel(
            "Delivery delay by lane",
            "s",
            quantiles("postline_deliverer_delivery_delay_seconds", by="lane"),
            description="Accepted to delivered, transactional and bulk apart: a bulk backlog "
            "raises the bulk lane's delay only.",
        ),
        panel(
            "Deliveries in memory by lane",
            "short",
            [
                (
                    f"sum by (lane) (postline_deliverer_window_deliveries{{{NS}}})",
                    "{{lane}}",
                )
            ],
            description="Each lane has its own budget (max_in_flight, bulk_max_in_flight).",
        ),
        panel(
            "Throttling steps and shaping",
            "ops",
            [
                (rate("postline_deliverer_throttle_changes_total", by="action"), "{{action}}"),
                (
                    rate("postline_deliverer_tls_required_failures_total", by="provider"),
                    "TLS required, unavailable {{provider}}",
                ),
                (rate("postline_deliverer_shaped_total", by="reason"), "shaped {{reason}}"),
            ],
        ),
        panel(
            "Delivered by transport security",
            "percentunit",
            [
                (
                    f"{rate('postline_deliverer_delivered_by_tls_total', by='security, verified')}"
                    f" / scalar({rate('postline_deliverer_delivered_by_tls_total')})",
                    "{{security}} ({{verified}})",
                )
            ],
            description="The share of recipients delivered over each kind of session: none "
            "(plaintext), opportunistic, mta-sts, dane, required (our own policy).",
        ),
        panel(
            "TLS sessions by policy result",
            "ops",
            [
                (
                    rate("postline_deliverer_tls_sessions_total", by="security, result"),
                    "{{security}} {{result}}",
                )
            ],
            description="Connection attempts by what governed them and the RFC 8460 result; "
            "a failure under mta-sts or dane defers that host's mail (TLS-RPT reports count "
            "the same sessions).",
        ),
        panel(
            "Retries scheduled and expired",
            "ops",
            [
                (rate("postline_deliverer_retries_scheduled_total", by="tier"), "retry {{tier}}"),
                (rate("postline_deliverer_expired_total"), "expired"),
            ],
        ),
        panel(
            "Held deliveries and warm-up overflow",
            "ops",
            [
                (rate("postline_deliverer_held_total", by="reason"), "held {{reason}}"),
                (
                    rate("postline_deliverer_warmup_overflow_total", by="pool"),
                    "overflow from {{pool}}",
                ),
            ],
            description="Held: a paused sender's mail cycling through a retry tier until "
            "resumed or expired, or a pool out of warm-up allowance waiting for the next UTC "
            "day. Overflow: mail sent from a pool's overflow pool instead.",
        ),
        panel(
            "Operator queue actions",
            "ops",
            [
                (rate("postline_deliverer_queue_actions_total", by="verb"), "applied {{verb}}"),
                (rate("postline_deliverer_queue_operator_total", by="action"), "{{action}}"),
                (
                    rate("postline_deliverer_queue_snapshot_failures_total"),
                    "live state not published",
                ),
            ],
            description="postline queue suspend/flush/bounce/delete/throttle-cancel as each "
            "replica applied them, and the Deliveries they moved (flushed, bounced, deleted, "
            "rewritten while a sweep read past them).",
        ),
        panel(
            "Operator suspensions in force",
            "short",
            [
                (
                    f"max by (kind) (postline_deliverer_queue_suspensions{{{NS}}})",
                    "{{kind}}",
                )
            ],
            description="Suspended mail waits in the retry tiers without attempts; postline "
            "queue suspended lists them, postline queue resume lifts one.",
        ),
        panel(
            "Attempts by source address",
            "ops",
            [
                (
                    rate("postline_deliverer_source_attempts_total", by="source, result"),
                    "{{source}} {{result}}",
                )
            ],
            description="One address deferring more than the others of its pool is throttled "
            "or listed on its own.",
        ),
        panel(
            "Warm-up allowance left today (deliverer)",
            "short",
            [
                (
                    f"min by (source, provider) (postline_deliverer_warmup_allowance_left{{{NS}}})",
                    "{{source}} {{provider}} left",
                ),
                (
                    f"max by (source, provider) (postline_deliverer_warmup_sent_today{{{NS}}})",
                    "{{source}} {{provider}} sent",
                ),
            ],
            description="As each deliverer sees it (the reputation stage's count and its own).",
        ),
        panel(
            "MX lookups",
            "ops",
            [(rate("postline_deliverer_mx_lookups_total", by="result"), "{{result}}")],
        ),
        panel("MX lookup time", "s", quantiles("postline_deliverer_mx_lookup_seconds")),
    ]


def bouncer_panels() -> list[Panel]:
    """The bouncer's metrics."""
    return [
        row("Bouncer"),
        panel(
            "Reports by type",
            "ops",
            [(rate("postline_bouncer_reports_total", by="type"), "{{type}}")],
        ),
        panel(
            "Bounces by class and provider",
            "ops",
            [
                (
                    rate("postline_bouncer_bounces_total", by="class, provider"),
                    "{{class}} {{provider}}",
                )
            ],
        ),
        panel(
            "Complaints by provider",
            "ops",
            [(rate("postline_bouncer_complaints_total", by="provider"), "{{provider}}")],
        ),
        panel(
            "Unsubscribes and suppressions",
            "ops",
            [
                (rate("postline_bouncer_unsubscribes_total", by="via"), "unsubscribe {{via}}"),
                (rate("postline_bouncer_suppressions_total", by="reason"), "suppress {{reason}}"),
            ],
        ),
        panel(
            "DSNs sent and reports rejected",
            "ops",
            [
                (rate("postline_bouncer_dsns_sent_total", by="action"), "DSN {{action}}"),
                (
                    rate("postline_bouncer_rejected_reports_total", by="reason"),
                    "rejected {{reason}}",
                ),
            ],
        ),
        panel(
            "Dead letters: new and handled (per hour)",
            "short",
            [
                (
                    f"sum (increase(postline_records_dead_lettered_total{{{NS}}}[1h]))",
                    "dead-lettered",
                ),
                (
                    f"sum by (action) (increase(postline_dead_letter_actions_total{{{NS}}}[1h]))",
                    "{{action}}",
                ),
            ],
            description="Records sent to postline.dead and what operators did with them "
            "(postline dead redrive/purge, the admin API). Dead letters keep coming and none "
            "are handled: nobody reads them (postline dead list).",
        ),
        panel(
            "Quarantine: messages held and handled (per hour)",
            "short",
            [
                (f"max (postline_quarantine_messages{{{NS}}})", "held"),
                (
                    f"sum by (action) (increase(postline_quarantine_actions_total{{{NS}}}[1h]))",
                    "{{action}}",
                ),
            ],
            description="Messages the content scanner held in postline.quarantine and what "
            "operators did with them (postline quarantine release/delete, the admin API). "
            "Held keeps growing and nothing is handled: nobody reviews them (postline "
            "quarantine list); many releases: the quarantine band catches wanted mail.",
        ),
        panel(
            "Opens and clicks: human and machine",
            "ops",
            [
                (rate("postline_bouncer_opens_total", by="who, agent"), "open {{who}} {{agent}}"),
                (
                    rate("postline_bouncer_clicks_total", by="who, agent"),
                    "click {{who}} {{agent}}",
                ),
            ],
            description="Tracking pixels served and tracked links followed, by who (machine: "
            "Apple Mail Privacy Protection, scanners, bots, clicks seconds after sending or "
            "in bursts) and user agent class. Reports count the human ones.",
        ),
        panel(
            "Tracking: refused requests and lost events",
            "ops",
            [
                (
                    rate("postline_bouncer_tracking_refused_total", by="endpoint, reason"),
                    "404 {{endpoint}} {{reason}}",
                ),
                (
                    rate("postline_bouncer_tracking_events_dropped_total", by="reason"),
                    "dropped {{reason}}",
                ),
            ],
            description="404s for forged or altered tokens (a steady rate: someone probes the "
            "redirector) and open/click events never published (the bus was slow or down: "
            "reports miss them).",
        ),
        panel(
            "Tracking events waiting to be published",
            "short",
            [(f"max (postline_bouncer_tracking_events_pending{{{NS}}})", "busiest bouncer")],
            description="Clicks wait bouncer.tracking.burst_window before publishing, so a few "
            "are normal. Near bouncer.tracking.max_pending: the bus is not keeping up and "
            "new events are about to be dropped.",
        ),
        panel(
            "TLS-RPT: sessions counted and reports sent (per hour)",
            "short",
            [
                (
                    "sum by (result) "
                    f"(increase(postline_bouncer_tlsrpt_sessions_total{{{NS}}}[1h]))",
                    "sessions {{result}}",
                ),
                (
                    "sum by (via, outcome) "
                    f"(increase(postline_bouncer_tlsrpt_reports_total{{{NS}}}[1h]))",
                    "reports {{via}} {{outcome}}",
                ),
            ],
            description="TLS sessions the deliverer reported, counted for the daily RFC 8460 "
            "reports (failed: a recipient's MX failed its MTA-STS or DANE policy; late: the "
            "bouncer lags past bouncer.tlsrpt.send_delay), and the reports sent once a day per "
            "domain by channel and outcome (retry, failed: the domain's rua does not take them).",
        ),
    ]


def reputation_panels() -> list[Panel]:
    """The reputation stage's metrics: rates, paused senders, decisions, warm-up."""
    warm = "source, provider"
    return [
        row("Reputation"),
        panel(
            "Rates by provider (window, all tenants)",
            "percentunit",
            [
                (
                    f"max by (provider, rate) (postline_reputation_provider_ratio{{{NS}}})",
                    "{{provider}} {{rate}}",
                )
            ],
            description="bounce = hard bounces / sent, complaint = complaints / delivered, "
            "block = policy blocks / sent, over [reputation] window. Gmail and Yahoo want "
            "complaints under 0.3% (0.1% advised).",
        ),
        panel(
            "Paused and warned senders",
            "short",
            [
                (
                    f"max by (scope, level) (postline_reputation_scopes{{{NS}}})",
                    "{{scope}} {{level}}",
                )
            ],
            description="Tenants and sending domains paused (refused at ingest, queued mail "
            "held) until an operator resumes them; postline reputation shows which.",
        ),
        panel(
            "Decisions",
            "short",
            [
                (
                    f"sum by (scope, classification) (increase("
                    f"postline_reputation_decisions_total{{{NS}}}[1h]))",
                    "{{scope}} {{classification}}",
                )
            ],
        ),
        panel(
            "Rates per tenant",
            "percentunit",
            [
                (
                    f"max by (tenant, rate) (postline_reputation_tenant_ratio{{{NS}}})",
                    "{{tenant}} {{rate}}",
                )
            ],
            description="Empty unless metrics.tenant_label = true.",
        ),
        panel(
            "Warm-up step and day",
            "short",
            [
                (f"max by ({warm}) (postline_warmup_step{{{NS}}})", "{{source}} {{provider}} step"),
                (f"max by ({warm}) (postline_warmup_day{{{NS}}})", "{{source}} {{provider}} day"),
            ],
        ),
        panel(
            "Warm-up allowance and sent today",
            "short",
            [
                (
                    f"max by ({warm}) (postline_warmup_allowance{{{NS}}})",
                    "{{source}} {{provider}} allowance",
                ),
                (
                    f"max by ({warm}) (postline_warmup_sent_today{{{NS}}})",
                    "{{source}} {{provider}} sent",
                ),
            ],
            description="Allowance 0: the address is warm (no limit).",
        ),
        panel(
            "Warm-up stuck",
            "short",
            [(f"max by ({warm}) (postline_warmup_stuck{{{NS}}})", "{{source}} {{provider}}")],
            description="1: not advanced for [pools.warmup] stuck_after_days (postline pool "
            "status).",
        ),
        panel(
            "Held credentials",
            "short",
            [
                (f"max(postline_reputation_credentials_held{{{NS}}})", "held"),
                (
                    f"sum by (signal) (increase("
                    f"postline_reputation_credential_holds_total{{{NS}}}[1h]))",
                    "held for {{signal}}",
                ),
            ],
            description="Logins and API keys refused (451) for a sudden rise over their own "
            "baseline, until released (postline credential list / release).",
        ),
    ]


def webhooks_panels() -> list[Panel]:
    """The webhooks stage's metrics: deliveries, latency, retry backlog, paused endpoints."""
    return [
        row("Webhooks"),
        panel(
            "Webhook deliveries by result",
            "ops",
            [(rate("postline_webhooks_deliveries_total", by="result"), "{{result}}")],
            description="Events POSTed per second by result; anything but ok goes to a retry "
            "tier. refused (SSRF rules) and secret (KEK) are configuration problems.",
        ),
        panel(
            "Event to acknowledgement",
            "s",
            quantiles("postline_webhooks_ack_latency_seconds"),
            description="From the event to the receiver's 2xx, retries included.",
        ),
        panel("Request time", "s", quantiles("postline_webhooks_request_seconds")),
        panel(
            "Sent to the retry tiers",
            "ops",
            [
                (rate("postline_webhooks_retries_total", by="tier"), "tier {{tier}}"),
                (rate("postline_webhooks_deferred_total", by="reason"), "no request: {{reason}}"),
                (rate("postline_webhooks_dead_total"), "dead letters"),
                (rate("postline_webhooks_unattributed_total", by="kind"), "no tenant: {{kind}}"),
            ],
        ),
        panel(
            "Retry backlog",
            "short",
            [
                (
                    'sum(kafka_consumergroup_lag{consumergroup="postline-webhooks-retry"})',
                    "waiting in the tiers (consumer lag)",
                ),
                (f"sum(postline_webhooks_retry_held{{{NS}}})", "due, being sent"),
                (f"sum(postline_webhooks_in_flight{{{NS}}})", "queued or being POSTed"),
            ],
            description="Events waiting in postline.webhooks.retry.<tier> for their next "
            "attempt; a backlog that keeps growing means receivers fail for good.",
        ),
        panel(
            "Paused endpoints and open circuits",
            "short",
            [
                (f"max(postline_webhooks_endpoints_paused{{{NS}}})", "paused endpoints"),
                (f"sum(postline_webhooks_circuits_open{{{NS}}})", "open circuits"),
                (f"sum(increase(postline_webhooks_pauses_total{{{NS}}}[1h]))", "paused (1h)"),
            ],
            description="A paused endpoint gets nothing until postline webhooks resume; "
            "postline webhooks list shows which and why.",
        ),
    ]


def store_panels() -> list[Panel]:
    """The store stage's metrics: events written, write time, outages, days held."""
    return [
        row("Reporting store"),
        panel(
            "Events into the store",
            "ops",
            [
                (rate("postline_store_events_written_total"), "written"),
                (rate("postline_store_duplicates_total"), "already there (replays)"),
                (rate("postline_store_erased_skipped_total"), "erased addresses (skipped)"),
            ],
            description="Events inserted per second, and those skipped because the store "
            "held them (a replay after a restart or a rebalance). Written should follow "
            "the rate of postline.events; the consumer lag of postline-store says how far "
            "behind it is.",
        ),
        panel(
            "Batch transaction time",
            "s",
            quantiles("postline_store_write_seconds"),
            description="One batch's database transaction; a slow database shows here first.",
        ),
        panel(
            "Database trouble",
            "short",
            [
                (rate("postline_store_batch_errors_total", by="reason"), "{{reason}} batches/s"),
                (f"max(postline_store_database_unavailable{{{NS}}})", "database unavailable"),
            ],
            description="unavailable: the database is down, slow or full; the stage is "
            "unready and retries, events wait on the topic. refused: a statement the "
            "database rejected; the batch is retried record by record.",
        ),
        panel(
            "Store behind the newest event",
            "s",
            [
                (
                    f"time() - max(postline_store_newest_event_timestamp_seconds{{{NS}}})",
                    "seconds since the newest stored event",
                )
            ],
            description="How old the newest stored event is: reports and searches are this "
            "far behind, as long as events keep coming.",
        ),
        panel(
            "Days held",
            "short",
            [
                (f"max(postline_store_partitions{{{NS}}})", "days (partitions)"),
                (
                    f"sum(increase(postline_store_partitions_dropped_total{{{NS}}}[1d]))",
                    "expired (1d)",
                ),
            ],
            description="About the retention in days plus [store] partitions_ahead; growing "
            "past it means expiry is not running (the stage's logs say why).",
        ),
    ]
