"""Ingest's metrics, declared once with help text an operator can act on.

Labels are bounded: ``listener`` (configured names), ``result`` and ``check`` (the fixed
names of this stage's checks), ``version`` (TLS versions). Addresses and domains never
become labels. Registered on the ``CollectorRegistry`` given, never a global one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.runtime.tenantsensor import TenantSensor

_SIZE_BUCKETS = (1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
_RCPT_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngestMetrics:
    """Every ingest metric on one registry."""

    def __init__(self, registry: CollectorRegistry, tenants: TenantSensor | None = None) -> None:
        #: Per-tenant counts, when the operator opted in (``metrics.tenant_label``).
        self.tenants = tenants if tenants is not None else TenantSensor.off()
        self.sessions_active = Gauge(
            "postline_ingest_sessions_active",
            "SMTP sessions open now, per listener. Near limits.max_sessions_per_ip times the "
            "number of clients means clients are being turned away.",
            ["listener"],
            registry=registry,
        )
        self.sessions = Counter(
            "postline_ingest_sessions_total",
            "SMTP sessions ended, per listener and result (ok: ended by the client; refused: "
            "turned away at connect; throttled: AUTH failures; drained: closed by a shutdown; "
            "timeout: idle past limits.command_timeout or limits.data_timeout; lost: the "
            "client dropped the connection without QUIT).",
            ["listener", "result"],
            registry=registry,
        )
        self.messages = Counter(
            "postline_ingest_messages_total",
            "Transactions per result (accepted, rejected, failed) and the check that rejected "
            "them (empty when accepted). A rise of failed means the bus does not acknowledge: "
            "clients get 451 and retry, nothing is lost.",
            ["result", "check"],
            registry=registry,
        )
        self.message_bytes = Histogram(
            "postline_ingest_message_size_bytes",
            "Size of accepted messages as handed to the bus, including our trace headers.",
            buckets=_SIZE_BUCKETS,
            registry=registry,
        )
        self.recipients = Histogram(
            "postline_ingest_message_recipients",
            "Envelope recipients per accepted message.",
            buckets=_RCPT_BUCKETS,
            registry=registry,
        )
        self.tls = Counter(
            "postline_ingest_tls_sessions_total",
            "TLS handshakes completed, by protocol version (STARTTLS and implicit TLS).",
            ["version"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "postline_ingest_auth_failures_total",
            "Failed AUTH attempts. A burst from few addresses is password guessing; see "
            'postline_ingest_sessions_total{result="throttled"} for how often it was cut off.',
            registry=registry,
        )
        self.buffered_bytes = Gauge(
            "postline_ingest_buffered_bytes",
            "Bytes of messages being received or handed off now, in memory, counted against "
            "ingest.limits.max_buffered_bytes. Near that limit new messages get 452 4.3.1 "
            "(the clients retry): more ingest replicas, or a larger budget with more memory.",
            registry=registry,
        )
        self.rejection_events_dropped = Counter(
            "postline_ingest_rejection_events_dropped_total",
            "Rejection events not published: the queue (ingest.limits.rejection_event_queue) "
            "was full or the bus failed. The refusals themselves happened; only their report "
            "is missing. A rise means a client floods refused commands or the bus is down.",
            registry=registry,
        )
        self.handoff_seconds = Histogram(
            "postline_ingest_handoff_seconds",
            "Time from the end of DATA to the bus acknowledging the Submission (the client "
            "waits this long for 250). A rising p99 means a slow bus; past "
            "bus.publish_timeout clients get 451.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.scans = Counter(
            "postline_ingest_scans_total",
            "Messages through the content scanner, per result: clean, tagged, rejected, "
            "soft_rejected, quarantined, skipped (over scanning.max_size, or skipped by "
            "rspamd), refused_size (over it, with over_size = refuse), unavailable (no "
            "verdict: sent unscanned with on_failure = open, else deferred). Any unavailable "
            "means mail is going out unscanned or waiting: look at the scanner.",
            ["result"],
            registry=registry,
        )
        self.scan_seconds = Histogram(
            "postline_ingest_scan_seconds",
            "Time the content scanner took per message (part of the reply's latency).",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.api_requests = Counter(
            "postline_ingest_api_requests_total",
            "HTTP sending API requests answered, per endpoint (message, raw, batch, openapi, "
            "problem) and status code. 202 is accepted and durable; 4xx is the client's "
            "(401 a bad key, 413 too large, 422 a bad request, 429 over a limit); 503 means "
            "nothing was sent (bus down or slow, short of memory, stopping) and clients retry.",
            ["endpoint", "status"],
            registry=registry,
        )
        self.api_seconds = Histogram(
            "postline_ingest_api_request_seconds",
            "Time from a sending API request's start to its answer, per endpoint (for a 202, "
            "the checks, building the message and the bus's acknowledgement).",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.api_idempotency = Counter(
            "postline_ingest_api_idempotency_total",
            "Requests with an Idempotency-Key, per outcome: new (sent), replayed (a retry "
            "answered with the first answer, not sent again), in_progress (409: the first is "
            "still running), mismatch (422: the key was used for another request), "
            "store_failed (Redis did not answer: with on_redis_failure=open kept in process "
            "meanwhile, else 503). A rise of store_failed means Redis is down.",
            ["outcome"],
            registry=registry,
        )
