"""deploy/check/crossref_*.py: what no schema can check, each broken once on purpose."""

from __future__ import annotations

from collections.abc import Callable

import crossref_config
import crossref_k8s
import crossref_kafka
import pytest
from common import Rendered

from tests.deploy.conftest import find

Overlay = Callable[[str], Rendered]


def problems(docs: Rendered) -> list[str]:
    return [
        *crossref_k8s.check(docs),
        *crossref_kafka.check(docs),
        *crossref_config.check(docs),
    ]


def test_every_overlay_passes(rendered: list[Rendered]) -> None:
    for item in rendered:
        assert problems(item) == []


def test_max_replicas_above_partitions(overlay: Overlay) -> None:
    prod = overlay("prod")
    find(prod, "ScaledObject", "postline-signer")["spec"]["maxReplicaCount"] = 20
    assert problems(prod) == [
        "prod: ScaledObject/postline-signer: maxReplicaCount 20 > 12 partitions of "
        "postline.submitted"
    ]


def test_consumer_group_must_be_the_stage_s(overlay: Overlay) -> None:
    prod = overlay("prod")
    meta = find(prod, "ScaledObject", "postline-deliverer")["spec"]["triggers"][0]["metadata"]
    meta["consumerGroup"] = "postline-deliverer-retry"
    assert problems(prod) == [
        "prod: ScaledObject/postline-deliverer: watches group 'postline-deliverer-retry' topic "
        "'postline.outbound'; postline-deliverer reads 'postline.outbound' as 'postline-deliverer' "
        "or 'postline.outbound.bulk' as 'postline-deliverer-bulk'"
    ]


def test_topic_settings_must_match_shared_topics(overlay: Overlay) -> None:
    prod = overlay("prod")
    spec = find(prod, "KafkaTopic", "postline-suppressions")["spec"]
    spec["partitions"] = 6
    spec["config"]["cleanup.policy"] = "delete"
    assert problems(prod) == [
        "prod: KafkaTopic/postline-suppressions: partitions 6 != 3 in shared/wire/topics.py",
        "prod: KafkaTopic/postline-suppressions: config cleanup.policy='delete', "
        "shared/wire/topics.py says 'compact'",
    ]


def test_a_missing_and_an_unknown_topic(overlay: Overlay) -> None:
    prod = overlay("prod")
    find(prod, "KafkaTopic", "postline-dead")["spec"]["topicName"] = "postline.deadletters"
    assert problems(prod) == [
        "prod: no KafkaTopic for postline.dead (shared/wire/topics.py declares it)",
        "prod: KafkaTopic/postline-dead: topic 'postline.deadletters' is not declared in "
        "shared/wire/topics.py",
    ]


def test_replication_above_the_brokers(overlay: Overlay) -> None:
    dev = overlay("dev")  # one broker
    find(dev, "KafkaTopic", "postline-events")["spec"]["replicas"] = 3
    found = problems(dev)
    assert "dev: KafkaTopic/postline-events: replicas 3 > 1 broker(s) in this overlay" in found


def test_kafka_config_replication_above_the_brokers(overlay: Overlay) -> None:
    dev = overlay("dev")
    find(dev, "Kafka", "postline")["spec"]["kafka"]["config"][
        "transaction.state.log.replication.factor"
    ] = 3
    found = problems(dev)
    assert (
        "dev: Kafka/postline: transaction.state.log.replication.factor=3 but the overlay has "
        "1 broker(s)"
    ) in found


def test_keda_bootstrap_must_name_this_namespace(overlay: Overlay) -> None:
    dev = overlay("dev")
    meta = find(dev, "ScaledObject", "postline-bouncer")["spec"]["triggers"][0]["metadata"]
    meta["bootstrapServers"] = "postline-kafka-bootstrap.postline.svc:9092"
    [problem] = problems(dev)
    assert problem.startswith(
        "dev: ScaledObject/postline-bouncer: 'postline-kafka-bootstrap.postline.svc:9092' is "
        "not the bootstrap Service of Kafka postline"
    )


def test_bootstrap_port_must_be_a_listener(overlay: Overlay) -> None:
    prod = overlay("prod")
    cm = next(c for c in prod.of_kind("ConfigMap") if "postline.toml" in c.get("data", {}))
    cm["data"]["postline.toml"] = cm["data"]["postline.toml"].replace(
        "postline-kafka-bootstrap:9092", "postline-kafka-bootstrap:9094"
    )
    assert problems(prod) == [
        "prod: config kafka.bootstrap: 'postline-kafka-bootstrap:9094': port is not a plain "
        "listener of Kafka postline (ports [9092])"
    ]


def test_keda_metadata_must_be_quoted(overlay: Overlay) -> None:
    prod = overlay("prod")
    meta = find(prod, "ScaledObject", "postline-signer")["spec"]["triggers"][0]["metadata"]
    meta["lagThreshold"] = 200
    assert problems(prod) == [
        "prod: ScaledObject/postline-signer: trigger metadata lagThreshold must be a quoted string"
    ]


def test_hpa_and_scaled_object_on_one_deployment(overlay: Overlay) -> None:
    prod = overlay("prod")
    find(prod, "HorizontalPodAutoscaler", "postline-ingest")["spec"]["scaleTargetRef"]["name"] = (
        "postline-signer"
    )
    assert problems(prod) == [
        "prod: Deployment/postline-signer: scaled by both HorizontalPodAutoscaler/postline-ingest "
        "and ScaledObject/postline-signer"
    ]


def test_service_selector_must_match_pods(overlay: Overlay) -> None:
    prod = overlay("prod")
    find(prod, "Service", "postline-ingest")["spec"]["selector"] = {
        "app.kubernetes.io/name": "postline-ingset"
    }
    assert problems(prod) == [
        "prod: Service/postline-ingest: selector {'app.kubernetes.io/name': 'postline-ingset'} "
        "matches no pod"
    ]


def test_named_ports_must_exist(overlay: Overlay) -> None:
    prod = overlay("prod")
    find(prod, "Service", "postline-bouncer")["spec"]["ports"][0]["targetPort"] = "smtpd"
    assert problems(prod) == [
        "prod: Service/postline-bouncer: port 'smtpd' is not a named port of "
        "Deployment/postline-bouncer"
    ]


def test_labels_must_reach_pod_templates(overlay: Overlay) -> None:
    prod = overlay("prod")
    labels = find(prod, "Deployment", "postline-signer")["spec"]["template"]["metadata"]["labels"]
    del labels["app.kubernetes.io/part-of"]
    found = problems(prod)
    assert (
        "prod: Deployment/postline-signer: pod template lacks label app.kubernetes.io/part-of "
        "(kustomize labels reach it?)"
    ) in found


def test_no_secret_is_committed(overlay: Overlay) -> None:
    prod = overlay("prod")
    prod.docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "postline-hmac"}})
    assert problems(prod) == [
        "prod: Secret/postline-hmac: Secrets must not be committed; document it in "
        "deployment.md instead"
    ]


def test_configured_files_must_be_mounted(overlay: Overlay) -> None:
    prod = overlay("prod")
    container = find(prod, "Deployment", "postline-signer")["spec"]["template"]["spec"][
        "containers"
    ][0]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "dkim"]
    assert problems(prod) == [
        "prod: Deployment/postline-signer: /etc/postline/dkim is configured but not mounted"
    ]


def test_grace_period_must_cover_the_drain(overlay: Overlay) -> None:
    prod = overlay("prod")
    find(prod, "Deployment", "postline-ingest")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ] = 60
    assert problems(prod) == [
        "prod: Deployment/postline-ingest: terminationGracePeriodSeconds 60 < preStop 10s + "
        "runtime.drain_timeout 120s: in-flight work would be killed"
    ]


def test_http_port_must_be_the_config_s(overlay: Overlay) -> None:
    prod = overlay("prod")
    ports = find(prod, "Deployment", "postline-deliverer")["spec"]["template"]["spec"][
        "containers"
    ][0]["ports"]
    ports[-1]["containerPort"] = 8080
    assert problems(prod) == [
        "prod: Deployment/postline-deliverer: container port 'http' 8080 != http.port 9464"
    ]


@pytest.mark.parametrize("kind", ["PodMonitor"])
def test_pod_monitor_needs_job_label(overlay: Overlay, kind: str) -> None:
    prod = overlay("prod")
    del find(prod, kind, "postline")["spec"]["jobLabel"]
    assert problems(prod) == [
        "prod: PodMonitor/postline: no jobLabel (job names would be namespace/name)"
    ]


def test_deliverer_section_must_load_with_the_pod_s_environment(overlay: Overlay) -> None:
    prod = overlay("prod")
    container = find(prod, "Deployment", "postline-deliverer")["spec"]["template"]["spec"][
        "containers"
    ][0]
    for item in container["env"]:
        if item["name"] == "POSTLINE__DELIVERER__NAMESERVERS":
            item["value"] = '["10.96.0.10"]'  # the cluster DNS: its AD bit cannot be trusted
    assert problems(prod) == [
        "prod: Deployment/postline-deliverer: deliverer.nameservers[0]: with "
        "deliverer.dane.enabled every nameserver must be a validating resolver on loopback "
        "(127.0.0.0/8 or ::1): its AD bit is trusted"
    ]
