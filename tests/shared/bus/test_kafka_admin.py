"""Topic administration against the real broker: create as declared, idempotently; list."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.bus.kafka_admin import (
    create_topics,
    list_topics,
    min_insync_replicas,
    topic_for,
)
from shared.bus.kafka_common import client_kwargs
from shared.config import Duration, KafkaConfig
from shared.errors import BusError, BusUnavailable
from shared.wire.topics import DEAD, SUBMITTED, SUPPRESSIONS, MiB, Topic, all_topics, retry_topic

pytestmark = pytest.mark.kafka


@pytest.fixture
def config(kafka_bootstrap: str, topic_prefix: str) -> KafkaConfig:
    return KafkaConfig(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)


async def _alter(config: KafkaConfig, wire: str, settings: dict[str, str]) -> None:
    """Change a topic behind Postline's back (what an operator's manual edit does)."""
    admin = AIOKafkaAdminClient(**client_kwargs(config))
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, wire, settings)])
    finally:
        await admin.close()


async def test_create_is_idempotent_and_lists_declared_settings(config: KafkaConfig) -> None:
    topics = all_topics()

    first = await create_topics(config, topics)
    second = await create_topics(config, topics)

    assert first == {t.name: "created" for t in topics}
    assert second == {t.name: "exists" for t in topics}
    listed = {info.name: info for info in await list_topics(config)}
    assert sorted(listed) == sorted(t.name for t in topics)
    for topic in topics:
        info = listed[topic.name]
        assert info.partitions == topic.partitions
        assert info.replication_factor == 1
        for key, value in topic.config.items():
            assert info.config[key] == value, (topic.name, key)
        assert info.config["min.insync.replicas"] == "1"


async def test_compacted_topic_has_compaction_and_its_own_size_limit(config: KafkaConfig) -> None:
    await create_topics(config, [SUPPRESSIONS, SUBMITTED])

    listed = {info.name: info for info in await list_topics(config)}

    assert listed["postline.suppressions"].config["cleanup.policy"] == "compact"
    assert listed["postline.suppressions"].config["max.message.bytes"] == str(1 * MiB)
    assert listed["postline.suppressions"].partitions == 3
    assert listed["postline.submitted"].config["cleanup.policy"] == "delete"
    assert listed["postline.submitted"].config["max.message.bytes"] == str(64 * MiB)


async def test_drifted_settings_are_brought_back_and_other_overrides_kept(
    config: KafkaConfig,
) -> None:
    await create_topics(config, [DEAD])
    wire = config.topic_prefix + DEAD.name
    await _alter(
        config,
        wire,
        {"cleanup.policy": "compact", "max.message.bytes": "1000", "segment.ms": "3600000"},
    )

    result = await create_topics(config, [DEAD])

    assert result == {DEAD.name: "updated"}
    (info,) = await list_topics(config)
    assert info.config["cleanup.policy"] == "delete"
    assert info.config["max.message.bytes"] == str(DEAD.max_message_bytes)
    assert info.config["retention.ms"] == str(DEAD.retention_ms)
    admin = AIOKafkaAdminClient(**client_kwargs(config))
    await admin.start()
    try:
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, wire, {"segment.ms": None})]
        )
    finally:
        await admin.close()
    entries = response.to_object()["resources"][0]["config_entries"]
    assert [e["config_value"] for e in entries if e["config_names"] == "segment.ms"] == ["3600000"]


async def test_partitions_are_raised_never_lowered(config: KafkaConfig) -> None:
    small = retry_topic("1m")
    await create_topics(config, [_with_partitions(small, 2)])

    assert await create_topics(config, [small]) == {small.name: "updated"}
    assert (await list_topics(config))[0].partitions == small.partitions
    assert await create_topics(config, [_with_partitions(small, 1)]) == {small.name: "exists"}
    assert (await list_topics(config))[0].partitions == small.partitions


async def test_list_without_prefix_filter_includes_other_namespaces(
    config: KafkaConfig, kafka_bootstrap: str, topic_prefix: str
) -> None:
    other = KafkaConfig(bootstrap=kafka_bootstrap, topic_prefix="other-" + topic_prefix)
    await create_topics(config, [DEAD])
    await create_topics(other, [DEAD])

    mine = await list_topics(config)
    everything = await list_topics(config, prefix_only=False)

    assert [info.name for info in mine] == ["postline.dead"]
    names = {info.name for info in everything}
    assert "postline.dead" in names
    assert f"other-{topic_prefix}postline.dead" in names
    assert not any(name.startswith("__") for name in names)


async def test_replication_factor_larger_than_the_cluster_is_refused(
    config: KafkaConfig,
) -> None:
    with pytest.raises(BusError, match="replication"):
        await create_topics(config, [DEAD], replication_factor=3)


async def test_unreachable_cluster_is_bus_unavailable(unused_tcp_port: int) -> None:
    dead = KafkaConfig(bootstrap=f"127.0.0.1:{unused_tcp_port}", request_timeout=Duration(2))

    with pytest.raises(BusUnavailable):
        await list_topics(dead)


def test_topic_lookup_knows_declared_retry_and_unknown_names() -> None:
    assert topic_for("postline.suppressions") is SUPPRESSIONS
    assert topic_for("postline.retry.15m").name == "postline.retry.15m"
    assert topic_for("postline.retry.15m").partitions == retry_topic("15m").partitions
    unknown = topic_for("scratch.topic")
    assert unknown.name == "scratch.topic"
    assert unknown.config["cleanup.policy"] == "delete"


def test_min_insync_replicas_follows_replication() -> None:
    assert [min_insync_replicas(rf) for rf in (1, 2, 3, 5)] == [1, 1, 2, 2]


def _with_partitions(topic: Topic[Any], partitions: int) -> Topic[Any]:
    return dataclasses.replace(topic, partitions=partitions)
