"""Topic administration on Kafka: create topics as ``shared.wire.topics`` declares them, list them.

Owns ``postline topics create|list`` (via :func:`create_topics` and :func:`list_topics`) and
the Kafka bus's ``ensure_topics``. Creation is idempotent: an existing topic has its
declared settings brought back in line (other per-topic overrides an operator set are kept)
and its partition count raised when the declaration asks for more. Partitions are never
removed (Kafka cannot) and replication is never changed (that is a reassignment, an operator
job). It does not create the internal topics (offsets, transactions); the broker does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.bus.kafka_common import WireNames, client_kwargs, map_error
from shared.config import KafkaConfig
from shared.errors import BusError, BusUnavailable
from shared.wire.records import Record
from shared.wire.topics import Topic, all_topics, retry_topic

#: The settings ``topics list`` shows (the ones Postline declares or relies on).
SHOWN_CONFIGS = (
    "cleanup.policy",
    "retention.ms",
    "max.message.bytes",
    "compression.type",
    "min.insync.replicas",
    "segment.ms",
    "delete.retention.ms",
    "min.cleanable.dirty.ratio",
)

# DescribeConfigs config_source 1 = DYNAMIC_TOPIC_CONFIG: an override set on this topic.
_TOPIC_OVERRIDE = 1


@dataclass(frozen=True)
class TopicInfo:
    """A topic as the broker has it (``name`` is logical: the configured prefix stripped)."""

    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


def topic_for(name: str) -> Topic[Record]:
    """The declaration of a logical topic name; unknown names get the default settings."""
    for topic in all_topics():
        if topic.name == name:
            return topic
    if name.startswith("postline.retry."):
        return retry_topic(name.removeprefix("postline.retry."))  # type: ignore[return-value]
    return Topic(name, Record, lambda _record: "", doc="Not declared in shared.wire.topics.")


def min_insync_replicas(replication_factor: int) -> int:
    """acks=all means "written to min.insync.replicas copies": 2 of 3 survives one broker
    loss without blocking producers; a single-replica topic can only ask for 1."""
    return max(1, min(2, replication_factor - 1))


def desired_config(topic: Topic[Any], replication_factor: int) -> dict[str, str]:
    """The broker settings a topic must have."""
    return {**topic.config, "min.insync.replicas": str(min_insync_replicas(replication_factor))}


async def create_topics(
    config: KafkaConfig,
    topics: Sequence[Topic[Any]],
    replication_factor: int | None = 1,
    *,
    update_existing: bool = True,
) -> dict[str, str]:
    """Create the topics (wire names get ``config.topic_prefix``); returns logical name ->
    ``"created"``, ``"exists"`` (already as declared) or ``"updated"`` (settings or
    partitions brought in line; only when ``update_existing``).

    ``replication_factor=None`` takes the cluster's ``default.replication.factor`` (what a
    stage uses when it creates a missing topic at start: on a three-broker cluster a topic
    made with one replica would lose its records with that broker).

    Raises ``BusUnavailable`` when the cluster cannot be reached, ``BusError`` when the
    broker refuses (e.g. a replication factor larger than the cluster).
    """
    names = WireNames(config.topic_prefix)
    admin = await _open_admin(config)
    try:
        rf = replication_factor
        if rf is None:
            rf = await broker_default_replication(admin)
        result = await _create_missing(admin, names, topics, rf)
        created = [names.wire(t.name) for t in topics if result[t.name] == "created"]
        await _wait_usable(admin, created, config.request_timeout)
        existing = [t for t in topics if result[t.name] == "exists"]
        if update_existing and existing:
            for topic in existing:
                if await _bring_in_line(admin, names.wire(topic.name), topic):
                    result[topic.name] = "updated"
        return result
    except kafka_errors.KafkaError as exc:
        raise map_error(exc, "create topics") from exc
    finally:
        await admin.close()


async def list_topics(config: KafkaConfig, prefix_only: bool = True) -> list[TopicInfo]:
    """Topics on the cluster, sorted by name, with partitions, replication and settings.

    ``prefix_only`` keeps those under ``config.topic_prefix`` (all when the prefix is empty);
    internal topics (``__consumer_offsets``...) are never listed.
    """
    names = WireNames(config.topic_prefix)
    admin = await _open_admin(config)
    try:
        described = await admin.describe_topics()
        wanted = [
            t
            for t in described
            if not t["is_internal"]
            and not t["topic"].startswith("__")
            and (not prefix_only or t["topic"].startswith(config.topic_prefix))
        ]
        configs = await _describe(admin, [t["topic"] for t in wanted])
        infos = [
            TopicInfo(
                name=names.logical(t["topic"]),
                partitions=len(t["partitions"]),
                replication_factor=_replication(t),
                config={
                    k: v for k, (v, _) in configs.get(t["topic"], {}).items() if k in SHOWN_CONFIGS
                },
            )
            for t in wanted
        ]
        return sorted(infos, key=lambda info: info.name)
    except kafka_errors.KafkaError as exc:
        raise map_error(exc, "list topics") from exc
    finally:
        await admin.close()


async def broker_default_replication(admin: AIOKafkaAdminClient) -> int:
    """The cluster's ``default.replication.factor``, read from one broker's configuration.

    CreateTopics v4 could ask for "the broker's default" itself (KIP-464), but aiokafka
    speaks it only up to v3, so the value is read (DescribeConfigs on a broker resource).
    """
    cluster = await admin.describe_cluster()
    brokers = sorted(int(broker["node_id"]) for broker in cluster["brokers"])
    if not brokers:
        raise BusUnavailable("no broker in the cluster metadata")
    resource = ConfigResource(ConfigResourceType.BROKER, str(brokers[0]))
    for response in await admin.describe_configs([resource]):
        obj = response.to_object()
        _raise_resource_errors(obj)
        for described in obj["resources"]:
            for entry in described["config_entries"]:
                if entry["config_names"] == "default.replication.factor":
                    # Not capped by the brokers alive now: with one of three down, a new
                    # topic is refused (as Kafka's own default would be), never made
                    # with fewer replicas than the operator asked for.
                    return max(1, int(entry["config_value"]))
    return 1


async def _open_admin(config: KafkaConfig) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(**client_kwargs(config))
    try:
        await admin.start()
    except (kafka_errors.KafkaError, OSError) as exc:
        await admin.close()
        raise map_error(exc, f"connect to {config.bootstrap}") from exc
    return admin


async def _create_missing(
    admin: AIOKafkaAdminClient, names: WireNames, topics: Sequence[Topic[Any]], rf: int
) -> dict[str, str]:
    requests = [
        NewTopic(names.wire(t.name), t.partitions, rf, topic_configs=desired_config(t, rf))
        for t in topics
    ]
    if not requests:
        return {}
    response = await admin.create_topics(requests)
    result: dict[str, str] = {}
    for entry in response.to_object()["topic_errors"]:
        error = kafka_errors.for_code(entry["error_code"])
        logical = names.logical(entry["topic"])
        if error is kafka_errors.NoError:
            result[logical] = "created"
        elif error is kafka_errors.TopicAlreadyExistsError:
            result[logical] = "exists"
        else:
            message = entry["error_message"] or error.__name__
            raise BusError(f"cannot create topic {entry['topic']}: {message}")
    return result


async def _wait_usable(admin: AIOKafkaAdminClient, wires: Sequence[str], limit: float) -> None:
    """Wait until new topics have a leader for every partition, so a publish or a listing
    right after creation sees them (the broker answers CreateTopics before metadata has
    propagated)."""
    if not wires:
        return
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        described = await admin.describe_topics(list(wires))
        if all(_usable(t) for t in described):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise BusUnavailable(f"new topics have no partition leaders after {limit}s")
        await asyncio.sleep(0.05)


def _usable(described: dict[str, Any]) -> bool:
    partitions = described["partitions"]
    return (
        described["error_code"] == 0
        and bool(partitions)
        and all(p["error_code"] == 0 and p["leader"] >= 0 for p in partitions)
    )


async def _bring_in_line(admin: AIOKafkaAdminClient, wire: str, topic: Topic[Any]) -> bool:
    """Fix a drifted existing topic; True when something changed."""
    described = (await admin.describe_topics([wire]))[0]
    changed = False
    if len(described["partitions"]) < topic.partitions:
        await admin.create_partitions({wire: NewPartitions(topic.partitions)})
        changed = True
    current = (await _describe(admin, [wire])).get(wire, {})
    desired = desired_config(topic, _replication(described))
    if any(current.get(key, ("", 0))[0] != value for key, value in desired.items()):
        # AlterConfigs replaces the whole override set, so keep the operator's other overrides.
        overrides = {k: v for k, (v, source) in current.items() if source == _TOPIC_OVERRIDE}
        resource = ConfigResource(ConfigResourceType.TOPIC, wire, {**overrides, **desired})
        for response in await admin.alter_configs([resource]):
            _raise_resource_errors(response.to_object())
        changed = True
    return changed


async def _describe(
    admin: AIOKafkaAdminClient, wires: Sequence[str]
) -> dict[str, dict[str, tuple[str, int]]]:
    """Per topic: config name -> (value, config_source)."""
    if not wires:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, wire) for wire in wires]
    out: dict[str, dict[str, tuple[str, int]]] = {}
    for response in await admin.describe_configs(resources):
        obj = response.to_object()
        _raise_resource_errors(obj)
        for resource in obj["resources"]:
            out[resource["resource_name"]] = {
                entry["config_names"]: (entry["config_value"], entry.get("config_source", -1))
                for entry in resource["config_entries"]
            }
    return out


def _raise_resource_errors(obj: dict[str, Any]) -> None:
    for resource in obj["resources"]:
        error = kafka_errors.for_code(resource["error_code"])
        if error is not kafka_errors.NoError:
            message = resource["error_message"] or error.__name__
            raise BusError(f"topic {resource['resource_name']}: {message}")


def _replication(described: dict[str, Any]) -> int:
    partitions = described["partitions"]
    return len(partitions[0]["replicas"]) if partitions else 0
