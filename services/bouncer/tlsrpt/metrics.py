"""TLS-RPT metrics. Labels are fixed sets: ``result`` (successful, failed, late, invalid),
``via`` (https, mailto, none) and ``outcome`` (sent, retry, failed, no_rua); domains are
never labels."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter


class TlsRptMetrics:
    """Registered on the registry passed in (no global state)."""

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
