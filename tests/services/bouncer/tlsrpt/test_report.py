"""The RFC 8460 report object, its gzip form, id and file name."""

from __future__ import annotations

import gzip
import json

from services.bouncer.tlsrpt.report import (
    Reporter,
    build_report,
    encode,
    filename,
    merge,
    report_id,
)
from shared.wire.records import TlsRpt, TlsRptFailure, TlsRptPolicy

REPORTER = Reporter("Example Relay", "tlsrpt@relay.test", "relay.test")
STS = ("version: STSv1", "mode: enforce", "mx: *.dest.test", "max_age: 86400")


def counts(partition: int, ok: int, failed: int, code: str = "") -> TlsRpt:
    failure = TlsRptFailure(
        result_type="certificate-expired",
        sending_mta_ip="198.51.100.7",
        receiving_mx_hostname="mx1.dest.test",
        receiving_ip="192.0.2.10",
        failure_reason_code=code,
        count=failed,
    )
    policy = TlsRptPolicy(
        policy_type="sts",
        policy_strings=STS,
        mx_patterns=("*.dest.test",),
        successful=ok,
        failed=failed,
        failures=(failure,) if failed else (),
    )
    return TlsRpt(domain="dest.test", day="2016-04-01", partition=partition, policies=(policy,))


def test_partitions_add_up_into_one_report_per_rfc_8460() -> None:
    policies = merge([counts(0, 5, 2), counts(3, 4, 1), counts(5, 0, 0)])
    report = build_report(REPORTER, "dest.test", "2016-04-01", policies)
    assert report == {
        "organization-name": "Example Relay",
        "date-range": {
            "start-datetime": "2016-04-01T00:00:00Z",
            "end-datetime": "2016-04-01T23:59:59Z",
        },
        "contact-info": "tlsrpt@relay.test",
        "report-id": report_id("relay.test", "dest.test", "2016-04-01"),
        "policies": [
            {
                "policy": {
                    "policy-type": "sts",
                    "policy-string": list(STS),
                    "policy-domain": "dest.test",
                    "mx-host": ["*.dest.test"],
                },
                "summary": {
                    "total-successful-session-count": 9,
                    "total-failure-session-count": 3,
                },
                "failure-details": [
                    {
                        "result-type": "certificate-expired",
                        "sending-mta-ip": "198.51.100.7",
                        "receiving-mx-hostname": "mx1.dest.test",
                        "receiving-ip": "192.0.2.10",
                        "failed-session-count": 3,
                    }
                ],
            }
        ],
    }


def test_the_gzip_is_the_json_and_stable() -> None:
    report = build_report(REPORTER, "dest.test", "2016-04-01", merge([counts(0, 1, 1, "x")]))
    body = encode(report)
    assert json.loads(gzip.decompress(body)) == report
    assert encode(report) == body  # no time stamp in the gzip header


def test_the_id_is_stable_per_domain_and_day_and_names_the_file() -> None:
    rid = report_id("relay.test", "dest.test", "2016-04-01")
    assert rid == report_id("relay.test", "dest.test", "2016-04-01")
    assert rid != report_id("relay.test", "dest.test", "2016-04-02")
    assert rid != report_id("relay.test", "other.test", "2016-04-01")
    name = filename("relay.test", "dest.test", "2016-04-01", rid)
    assert name == f"relay.test!dest.test!1459468800!1459555199!{rid.replace('-', '')}.json.gz"


def test_no_policy_found_has_no_policy_string() -> None:
    policy = TlsRptPolicy(policy_type="no-policy-found", successful=1)
    report = build_report(REPORTER, "plain.test", "2016-04-01", [policy])
    assert report["policies"][0]["policy"] == {
        "policy-type": "no-policy-found",
        "policy-domain": "plain.test",
    }
    assert "failure-details" not in report["policies"][0]
