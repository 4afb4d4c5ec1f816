"""The RFC 8460 aggregate report of one policy domain and UTC day, built from the counts.

Owns adding up the ``counts`` records of every events partition (:func:`merge`), the
report's JSON (RFC 8460 4.3/4.4), its gzip form, its id and its file name (RFC 8460 5.1).
The report id is derived from the submitter, domain and day, so a report sent again (a
restart between sending and marking it sent) has the same id and the receiver can tell
it is one report. Pure: no clock, no I/O.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.bouncer.tlsrpt.counts import DAY, NO_POLICY, day_start
from shared.wire.records import TlsRpt, TlsRptFailure, TlsRptPolicy

#: RFC 8460 6.4/6.5 media type of a gzip-compressed report.
MEDIA_TYPE = "application/tlsrpt+gzip"
_NAMESPACE = uuid.UUID("5c1c5e0e-4c1b-4e8a-9d55-8f0f4a1b7d21")  # ours, for uuid5 report ids


@dataclass(frozen=True)
class Reporter:
    """Who the report says it is from (``[bouncer.tlsrpt]``)."""

    organization_name: str
    contact_info: str
    submitter: str


def merge(records: Iterable[TlsRpt]) -> list[TlsRptPolicy]:
    """The policies of one domain-day, every partition's counts added up."""
    policies: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[Any]] = {}
    for record in records:
        for policy in record.policies:
            key = (policy.policy_type, policy.policy_strings, policy.mx_patterns)
            found = policies.setdefault(key, [0, 0, {}])
            found[0] += policy.successful
            found[1] += policy.failed
            for failure in policy.failures:
                row = (
                    failure.result_type,
                    failure.sending_mta_ip,
                    failure.receiving_mx_hostname,
                    failure.receiving_ip,
                    failure.failure_reason_code,
                )
                found[2][row] = found[2].get(row, 0) + failure.count
    return [
        TlsRptPolicy(
            policy_type=key[0],
            policy_strings=key[1],
            mx_patterns=key[2],
            successful=ok,
            failed=failed,
            failures=tuple(
                TlsRptFailure(
                    result_type=row[0],
                    sending_mta_ip=row[1],
                    receiving_mx_hostname=row[2],
                    receiving_ip=row[3],
                    failure_reason_code=row[4],
                    count=count,
                )
                for row, count in sorted(rows.items())
            ),
        )
        for key, (ok, failed, rows) in sorted(policies.items())
    ]


def report_id(submitter: str, domain: str, day: str) -> str:
    """The report's id: the same for the same submitter, domain and day."""
    return str(uuid.uuid5(_NAMESPACE, f"{submitter}|{domain}|{day}"))


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_report(
    reporter: Reporter, domain: str, day: str, policies: Iterable[TlsRptPolicy]
) -> dict[str, Any]:
    """The RFC 8460 4.4 report object of ``domain`` for UTC ``day``."""
    start = day_start(day)
    return {
        "organization-name": reporter.organization_name,
        "date-range": {
            "start-datetime": _stamp(start),
            "end-datetime": _stamp(start + DAY - 1),
        },
        "contact-info": reporter.contact_info,
        "report-id": report_id(reporter.submitter, domain, day),
        "policies": [_policy(domain, p) for p in policies],
    }


def _policy(domain: str, policy: TlsRptPolicy) -> dict[str, Any]:
    described: dict[str, Any] = {"policy-type": policy.policy_type or NO_POLICY}
    if policy.policy_strings:
        described["policy-string"] = list(policy.policy_strings)
    described["policy-domain"] = domain
    if policy.mx_patterns:
        described["mx-host"] = list(policy.mx_patterns)
    result: dict[str, Any] = {
        "policy": described,
        "summary": {
            "total-successful-session-count": policy.successful,
            "total-failure-session-count": policy.failed,
        },
    }
    if policy.failures:
        result["failure-details"] = [_failure(f) for f in policy.failures]
    return result


def _failure(failure: TlsRptFailure) -> dict[str, Any]:
    row: dict[str, Any] = {"result-type": failure.result_type}
    # RFC 8460 4.4: the optional fields are left out when unknown rather than sent empty.
    for name, value in (
        ("sending-mta-ip", failure.sending_mta_ip),
        ("receiving-mx-hostname", failure.receiving_mx_hostname),
        ("receiving-ip", failure.receiving_ip),
    ):
        if value:
            row[name] = value
    row["failed-session-count"] = failure.count
    if failure.failure_reason_code:
        row["failure-reason-code"] = failure.failure_reason_code
    return row


def encode(report: dict[str, Any]) -> bytes:
    """The report as gzip-compressed UTF-8 JSON (RFC 8460 5.1), byte-for-byte the same
    for the same report (no time stamp in the gzip header)."""
    text = json.dumps(report, ensure_ascii=False, separators=(",", ":"))
    return gzip.compress(text.encode("utf-8"), mtime=0)


def filename(submitter: str, domain: str, day: str, rid: str) -> str:
    """RFC 8460 5.1: ``submitter!policy-domain!begin!end!unique-id.json.gz`` (begin and
    end in epoch seconds; the unique id is the report id's hex digits)."""
    start = int(day_start(day))
    unique = rid.replace("-", "")
    return f"{submitter}!{domain}!{start}!{start + DAY - 1}!{unique}.json.gz"


def is_empty(policies: Iterable[TlsRptPolicy]) -> bool:
    """Whether no session was counted at all."""
    return all(p.successful == 0 and p.failed == 0 for p in policies)
