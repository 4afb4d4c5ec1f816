"""One exposition out of several processes': families merged, samples labelled."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shared.runtime.metricsmerge import merge_expositions


def exposition(stage: str, delivered: int) -> bytes:
    registry = CollectorRegistry()
    Gauge("postline_stage_ready", "ready", ["stage"], registry=registry).labels(stage).set(1)
    counter = Counter("postline_delivered", "delivered", registry=registry)
    counter.inc(delivered)
    Histogram("postline_seconds", "latency", registry=registry).observe(0.3)
    return generate_latest(registry)


def test_each_family_once_with_every_process_sample_labelled() -> None:
    merged = merge_expositions(
        [("run", exposition("ingest", 1)), ("signer", exposition("signer", 5))]
    )
    families = {f.name: f for f in text_string_to_metric_families(merged.decode())}
    assert merged.decode().count("# TYPE postline_stage_ready gauge") == 1
    ready = {
        (s.labels["process"], s.labels["stage"]) for s in families["postline_stage_ready"].samples
    }
    assert ready == {("run", "ingest"), ("signer", "signer")}
    delivered = {
        s.labels["process"]: s.value
        for s in families["postline_delivered"].samples
        if s.name == "postline_delivered_total"
    }
    assert delivered == {"run": 1.0, "signer": 5.0}
    assert families["postline_seconds"].type == "histogram"
    counts = [s for s in families["postline_seconds"].samples if s.name == "postline_seconds_count"]
    assert sorted(s.labels["process"] for s in counts) == ["run", "signer"]


def test_a_process_without_a_family_adds_nothing_to_it() -> None:
    only = CollectorRegistry()
    Gauge("postline_only_here", "one process", registry=only).set(2)
    merged = merge_expositions([("run", generate_latest(only)), ("signer", b"")])
    (family,) = text_string_to_metric_families(merged.decode())
    assert [(s.labels, s.value) for s in family.samples] == [({"process": "run"}, 2.0)]
