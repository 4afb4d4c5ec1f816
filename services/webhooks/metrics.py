"""The webhooks stage's metrics (prefix ``postline_webhooks_``), one sensor object.

Labels are bounded: ``result`` (``client.RESULTS``), ``reason`` (why an event went to a
retry tier without a request: circuit_open, queue_full, paused, shed), ``tier`` (the
configured tiers). Tenants and endpoint ids are never a label (thousands of endpoints);
``postline webhooks list`` shows each endpoint's state.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Event-to-acknowledgement buckets: a healthy receiver answers within a second of the
#: event; a retried event lands in the tiers' minutes and hours.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400)


class WebhooksMetrics:
    """Every webhooks metric, registered on the registry passed in (no global state)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "postline_webhooks_deliveries_total",
            "Events POSTed to endpoints by result (ok = 2xx; http_4xx, http_5xx, http_3xx, "
            "timeout, connect, tls, refused = the SSRF rules, secret = a sealed secret that "
            "does not open). Anything but ok goes to a retry tier; a rising share of "
            "refused or secret is a configuration problem, not a receiver's.",
            ["result"],
            registry=registry,
        )
        self.unattributed = Counter(
            "postline_webhooks_unattributed_total",
            "Events about a message that carried no tenant and whose message's tenant this "
            "replica did not remember (webhooks.remember_messages): they reached no webhook. "
            "Tenants' verified domains (their own return-path hosts) avoid them.",
            ["kind"],
            registry=registry,
        )
        self.deferred = Counter(
            "postline_webhooks_deferred_total",
            "Events sent to a retry tier without a request, by reason: circuit_open (the "
            "endpoint failed too often in a row), queue_full (its in-memory queue is full), "
            "paused (postline webhooks resume), shed (the stage stopped first).",
            ["reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "postline_webhooks_ack_latency_seconds",
            "From the event to the receiver's 2xx, per event (retries included): the p99 is "
            "what a tenant sees; seconds when receivers are healthy, the tiers' minutes when "
            "they fail.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.request_seconds = Histogram(
            "postline_webhooks_request_seconds",
            "One POST, from sending to the answer (or the timeout): a receiver that is slow "
            "to answer holds its endpoint's request slots.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        self.retries = Counter(
            "postline_webhooks_retries_total",
            "Events written to a retry tier, by tier. The backlog waiting in the tiers is the "
            "lag of consumer group postline-webhooks-retry (kafka_consumergroup_lag).",
            ["tier"],
            registry=registry,
        )
        self.dead = Counter(
            "postline_webhooks_dead_total",
            "Events not acknowledged within max_age, now dead letters on postline.dead "
            "(postline webhooks redrive puts them back).",
            registry=registry,
        )
        self.held = Gauge(
            "postline_webhooks_retry_held",
            "Retry records this replica is sending now (due, handed to the endpoint queues, "
            "not yet acknowledged or sent back to a tier). The records still waiting for their "
            "time are the lag of consumer group postline-webhooks-retry.",
            registry=registry,
        )
        self.in_flight = Gauge(
            "postline_webhooks_in_flight",
            "Events queued or being POSTed in this replica, all endpoints.",
            registry=registry,
        )
        self.circuits_open = Gauge(
            "postline_webhooks_circuits_open",
            "Endpoints whose circuit is open in this replica (failing in a row): their "
            "events go to the retry tiers without a request.",
            registry=registry,
        )
        self.paused = Gauge(
            "postline_webhooks_endpoints_paused",
            "Endpoints paused (by this stage after failing for long, or by an operator): "
            "nothing is sent to them until postline webhooks resume.",
            registry=registry,
        )
        self.pauses = Counter(
            "postline_webhooks_pauses_total",
            "Endpoints this stage paused after failing for pause_after (a webhook event "
            "with classification paused says which).",
            registry=registry,
        )
