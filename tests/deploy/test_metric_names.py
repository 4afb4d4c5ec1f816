"""Metric naming review across every stage (issue 8 item 6), on the real registries.

Prefix ``postline_``, base units, ``_total`` on counters, help text on every metric, no
recipient domain as a label, a build_info gauge, and every metric on a dashboard.
"""

from __future__ import annotations

import dashboards
import pytest
from exposition import Family, families

#: Suffixes of histogram and gauge names: a base unit, or what is counted.
UNIT_SUFFIXES = ("_seconds", "_bytes", "_records", "_recipients", "_deliveries", "_ratio")
#: Labels that would carry a recipient's domain or address (unbounded).
FORBIDDEN_LABELS = {
    "domain",
    "recipient",
    "rcpt",
    "address",
    "email",
    "mx",
    "host",
    "recipient_domain",
}
#: ``signing_domain`` (a configured DKIM domain: the operator's set) only on the key gauges.
SIGNING_DOMAIN_METRICS = {"postline_signer_key_age_seconds", "postline_signer_key_expiry_seconds"}


@pytest.fixture(scope="module")
def exported() -> list[Family]:
    return families()


def test_every_stage_contributes(exported: list[Family]) -> None:
    owners = {family.owner for family in exported}
    assert {
        "CoreMetrics",
        "IngestMetrics",
        "SignerMetrics",
        "DelivererMetrics",
        "BouncerMetrics",
    } <= owners


def test_prefix_and_help_text(exported: list[Family]) -> None:
    for family in exported:
        assert family.name.startswith("postline_"), family.name
        assert len(family.help) >= 20, f"{family.name}: help text missing or too short"


def test_counters_end_in_total(exported: list[Family]) -> None:
    for family in exported:
        if family.type == "counter":
            assert f"{family.name}_total" in family.samples, family.name
            assert not family.name.endswith("_total"), f"{family.name}: doubled _total"


def test_histograms_and_gauges_name_their_unit(exported: list[Family]) -> None:
    for family in exported:
        if family.type == "histogram":
            assert family.name.endswith(UNIT_SUFFIXES), f"{family.name}: no unit suffix"
        if family.name.endswith(("_milliseconds", "_ms", "_kb", "_mb", "_minutes")):
            pytest.fail(f"{family.name}: not a base unit")


def test_no_recipient_domain_label(exported: list[Family]) -> None:
    for family in exported:
        assert not FORBIDDEN_LABELS & set(family.labels), family.name
        if "signing_domain" in family.labels:
            assert family.name in SIGNING_DOMAIN_METRICS, f"{family.name}: signing_domain label"


def test_build_info(exported: list[Family]) -> None:
    [info] = [f for f in exported if f.name == "postline_build"]
    assert "postline_build_info" in info.samples
    assert {"version", "python"} <= set(info.labels)


def test_every_metric_is_on_a_dashboard() -> None:
    assert [p for p in dashboards.lint() if "on no dashboard" in p] == []
