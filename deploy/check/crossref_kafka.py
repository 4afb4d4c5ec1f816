"""Cross-reference checks between Kafka, KEDA, the Postline config and the code.

- KafkaTopics carry exactly the settings of :func:`shared.wire.topics.all_topics` (partitions and
  config), one per topic, with the config's ``kafka.topic_prefix``; the deliverer's retry
  tiers each have a topic.
- KEDA kafka triggers use the consumer group and topic the stage really reads (the GROUP
  constants in ``services/``), quoted string values, ``maxReplicaCount`` no more than the
  topic's partitions, and a bootstrap address naming this namespace's Kafka and a listener
  port.
- The config's ``kafka.bootstrap`` names the Kafka cluster's bootstrap Service and a plain
  listener's port; replication never exceeds the brokers of the overlay.
Owns these checks; pod-level ones are in ``crossref_k8s.py``.
"""

from __future__ import annotations

from collections.abc import Iterable

from common import Manifest, Rendered, ref
from postline_config import load_rendered_config

from services.bouncer.stage import GROUP as BOUNCER_GROUP
from services.deliverer.config import load as load_deliverer
from services.deliverer.lanes import LANES
from services.signer.stage import GROUP as SIGNER_GROUP
from shared.wire.topics import EVENTS, SUBMITTED, all_topics, retry_topic

#: Deployment -> the (consumer group, topic) pairs its autoscaler may watch, from the code
#: (the deliverer reads one topic per lane, each with its own group: lanes.py).
SCALED_READERS = {
    "postline-signer": {(SIGNER_GROUP, SUBMITTED.name)},
    "postline-deliverer": {(lane.group, lane.topic.name) for lane in LANES},
    "postline-bouncer": {(BOUNCER_GROUP, EVENTS.name)},
}
REPLICATION_KEYS = (
    "default.replication.factor",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
)


def check(rendered: Rendered) -> list[str]:
    """Every problem in one overlay, each prefixed with the overlay's name."""
    kafkas = rendered.of_kind("Kafka")
    if len(kafkas) != 1:
        return [f"{rendered.overlay}: expected one Kafka resource, found {len(kafkas)}"]
    config = load_rendered_config(rendered)
    prefix = config.core.kafka.topic_prefix
    topics = {
        doc["spec"].get("topicName", doc["metadata"]["name"]): doc
        for doc in rendered.of_kind("KafkaTopic")
    }
    problems = [
        *_topics(topics, prefix, load_deliverer(config).retry.tiers),
        *_replication(rendered, kafkas[0], topics),
        *_scaled_objects(rendered, kafkas[0], topics, prefix),
        *_bootstrap(config.core.kafka.bootstrap, kafkas[0], config.core.kafka.security_protocol),
    ]
    return [f"{rendered.overlay}: {problem}" for problem in problems]


def _topics(topics: dict[str, Manifest], prefix: str, tiers: Iterable[str]) -> Iterable[str]:
    declared = all_topics()
    declared += [
        retry_topic(t) for t in tiers if retry_topic(t).name not in {d.name for d in declared}
    ]
    for topic in declared:
        doc = topics.get(prefix + topic.name)
        if doc is None:
            yield f"no KafkaTopic for {prefix + topic.name} (shared/wire/topics.py declares it)"
            continue
        spec = doc["spec"]
        if spec.get("partitions") != topic.partitions:
            yield (
                f"{ref(doc)}: partitions {spec.get('partitions')} != {topic.partitions} "
                "in shared/wire/topics.py"
            )
        config = {k: str(v) for k, v in (spec.get("config") or {}).items()}
        for key, value in topic.config.items():
            if config.get(key) != value:
                yield (
                    f"{ref(doc)}: config {key}={config.get(key)!r}, "
                    f"shared/wire/topics.py says {value!r}"
                )
    known = {prefix + topic.name for topic in declared}
    for name, doc in topics.items():
        if name not in known:
            yield f"{ref(doc)}: topic {name!r} is not declared in shared/wire/topics.py"


def _brokers(rendered: Rendered, cluster: str) -> int:
    return sum(
        pool["spec"]["replicas"]
        for pool in rendered.of_kind("KafkaNodePool")
        if pool["metadata"].get("labels", {}).get("strimzi.io/cluster") == cluster
        and "broker" in pool["spec"].get("roles", [])
    )


def _replication(rendered: Rendered, kafka: Manifest, topics: dict[str, Manifest]) -> Iterable[str]:
    brokers = _brokers(rendered, kafka["metadata"]["name"])
    config = kafka["spec"]["kafka"].get("config") or {}
    min_isr = int(config.get("min.insync.replicas", 1))
    for key in REPLICATION_KEYS:
        if int(config.get(key, 1)) > brokers:
            yield f"{ref(kafka)}: {key}={config[key]} but the overlay has {brokers} broker(s)"
    if int(config.get("transaction.state.log.min.isr", 1)) > int(
        config.get("transaction.state.log.replication.factor", 1)
    ):
        yield f"{ref(kafka)}: transaction.state.log.min.isr exceeds its replication factor"
    for doc in topics.values():
        replicas = int(doc["spec"].get("replicas", config.get("default.replication.factor", 1)))
        if replicas > brokers:
            yield f"{ref(doc)}: replicas {replicas} > {brokers} broker(s) in this overlay"
        if replicas < min_isr:
            yield (
                f"{ref(doc)}: replicas {replicas} < min.insync.replicas {min_isr}: "
                "transactional writes would fail"
            )


def _scaled_objects(
    rendered: Rendered, kafka: Manifest, topics: dict[str, Manifest], prefix: str
) -> Iterable[str]:
    for so in rendered.of_kind("ScaledObject"):
        target = so["spec"]["scaleTargetRef"]["name"]
        expected = SCALED_READERS.get(target)
        for trigger in so["spec"].get("triggers", []):
            if trigger.get("type") != "kafka":
                continue
            meta = trigger.get("metadata") or {}
            for key, value in meta.items():
                if not isinstance(value, str):
                    yield f"{ref(so)}: trigger metadata {key} must be a quoted string"
            reads = sorted((group, prefix + topic) for group, topic in expected or ())
            if reads and (meta.get("consumerGroup"), meta.get("topic")) not in reads:
                readers = " or ".join(f"{topic!r} as {group!r}" for group, topic in reads)
                yield (
                    f"{ref(so)}: watches group {meta.get('consumerGroup')!r} topic "
                    f"{meta.get('topic')!r}; {target} reads {readers}"
                )
            topic = topics.get(str(meta.get("topic")))
            if topic is None:
                yield f"{ref(so)}: topic {meta.get('topic')!r} has no KafkaTopic"
            elif int(so["spec"].get("maxReplicaCount", 100)) > topic["spec"]["partitions"]:
                yield (
                    f"{ref(so)}: maxReplicaCount {so['spec'].get('maxReplicaCount', 100)} > "
                    f"{topic['spec']['partitions']} partitions of {meta.get('topic')}"
                )
            namespace = so["metadata"].get("namespace", "")
            yield from _bootstrap(
                str(meta.get("bootstrapServers", "")),
                kafka,
                "PLAINTEXT",
                namespace=namespace,
                who=ref(so),
            )


def _bootstrap(
    servers: str,
    kafka: Manifest,
    protocol: str,
    namespace: str = "",
    who: str = "config kafka.bootstrap",
) -> Iterable[str]:
    name = kafka["metadata"]["name"]
    service = f"{name}-kafka-bootstrap"
    allowed = {service} if not namespace else set()
    ns = namespace or kafka["metadata"].get("namespace", "")
    allowed |= {f"{service}.{ns}", f"{service}.{ns}.svc", f"{service}.{ns}.svc.cluster.local"}
    tls = protocol in ("SSL", "SASL_SSL")
    ports = {
        item["port"] for item in kafka["spec"]["kafka"]["listeners"] if bool(item.get("tls")) == tls
    }
    for server in filter(None, (s.strip() for s in servers.split(","))):
        host, _, port = server.rpartition(":")
        if host not in allowed:
            yield (
                f"{who}: {server!r} is not the bootstrap Service of Kafka {name} "
                f"({sorted(allowed)})"
            )
        if not port.isdigit() or int(port) not in ports:
            yield (
                f"{who}: {server!r}: port is not a {'TLS' if tls else 'plain'} listener "
                f"of Kafka {name} (ports {sorted(ports)})"
            )
