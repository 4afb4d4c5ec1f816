"""The runtime's core metrics, declared once, each with help text an operator can act on.

Naming: prefix ``postline_``, base units (seconds, bytes), ``_total`` on counters. Labels are
bounded: ``stage`` (four values), ``topic`` (the declared topics), ``reason`` (a small class
list, see :func:`reason_class`). Recipient domains are never a label.

This module owns the metrics every stage shares (build info, the consume/transaction loop,
readiness, in-flight work). Stage-specific metrics live with each stage, registered on the
same ``StageContext.registry``. No global registry: everything is registered on the
``CollectorRegistry`` passed in, so tests and processes never share state.
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from shared.errors import DecodeError, PoisonRecord
from shared.version import package_version

#: Reason classes for dead letters; keeps the ``reason`` label bounded.
REASON_DECODE = "decode"
REASON_POISON = "poison"
REASON_FAILED = "failed"

_TXN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def reason_class(exc: BaseException) -> str:
    """The bounded ``reason`` label for why a record was dead-lettered."""
    if isinstance(exc, DecodeError):
        return REASON_DECODE
    if isinstance(exc, PoisonRecord):
        return REASON_POISON
    return REASON_FAILED


class CoreMetrics:
    """The metrics the runtime and the batch loop update, on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.build_info = Info(
            "postline_build",
            "Postline version and Python version of this process. Compare across pods to spot "
            "a rollout that did not finish.",
            registry=registry,
        )
        self.build_info.info({"version": package_version(), "python": platform.python_version()})
        self.records_consumed = Counter(
            "postline_records_consumed_total",
            "Input records a stage read from a topic and committed (processed or dead-lettered). "
            "rate() is the stage's throughput; flat while lag grows means the stage is stuck.",
            ["stage", "topic"],
            registry=registry,
        )
        self.records_dead = Counter(
            "postline_records_dead_lettered_total",
            "Input records sent to postline.dead instead of being processed, by reason class "
            "(decode: bytes not a valid record; poison: the stage rejected the record; failed: "
            "it kept raising). Any increase deserves a look at postline.dead; alert on a "
            "sustained rate.",
            ["stage", "reason"],
            registry=registry,
        )
        self.transaction_seconds = Histogram(
            "postline_transaction_commit_seconds",
            "Time to publish a batch's outputs and commit its offsets in one bus transaction. "
            "A rising p99 means the bus (Kafka brokers or the SQLite disk) is slow.",
            ["stage"],
            buckets=_TXN_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "postline_batch_records",
            "Records per batch handed to a stage. Batches near the maximum mean the stage is "
            "behind and reading as fast as it can; small batches mean it keeps up.",
            ["stage"],
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.bus_errors = Counter(
            "postline_bus_errors_total",
            "Bus failures (unreachable, aborted transaction) a stage's loop backed off from "
            "and retried. A steady rate means the bus is down or flapping; nothing is lost.",
            ["stage"],
            registry=registry,
        )
        self.task_failures = Counter(
            "postline_task_failures_total",
            "Background tasks of a stage (retry loop, table followers, workers) that died with "
            "an error. Any increase is a bug: the stage stops being ready and, by default, the "
            "process exits so the orchestrator restarts it. The log line has the traceback.",
            ["stage", "task"],
            registry=registry,
        )
        self.work_failures = Counter(
            "postline_work_failures_total",
            "Records whose out-of-order work raised (reason error) or got no outcome in time "
            "(reason timeout) and was ended with the stage's failure outcome instead (the "
            "deliverer defers the message). Any increase is a bug worth a look at the log.",
            ["stage", "reason"],
            registry=registry,
        )
        self.tenant_messages = Counter(
            "postline_tenant_messages",
            "Messages per tenant, by stage and result (ingest: accepted, rejected; deliverer, "
            "per recipient: delivered, deferred, bounced, expired). Exported only with "
            "metrics.tenant_label = true (one series per tenant, stage and result): compare a "
            "tenant's bounced or rejected share with the others' to find the one hurting "
            "reputation. Updated through shared.runtime.tenantsensor.",
            ["tenant", "stage", "result"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "postline_in_flight",
            "Units of work (batches, SMTP sessions, deliveries) a stage is processing now. "
            "SIGTERM waits for these to finish, up to runtime.drain_timeout.",
            ["stage"],
            registry=registry,
        )
        self.stage_ready = Gauge(
            "postline_stage_ready",
            "1 when the stage serves and is not stopping, else 0. /readyz answers 200 only when "
            "every stage of the process is 1.",
            ["stage"],
            registry=registry,
        )
