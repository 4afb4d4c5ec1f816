"""The Kafka bus on three brokers: what only a replicated cluster shows.

- a topic a stage creates at start gets the cluster's replication (3), not 1;
- a consumer whose cached leader of a never-committed partition is stale still gets its
  first position (``shared.bus.kafka_reset``; aiokafka alone asked the old leader for up to
  five minutes and fetched nothing else from it meanwhile);
- a publish to a partition with fewer in-sync replicas than ``min.insync.replicas`` fails
  with ``BusUnavailable`` naming NOT_ENOUGH_REPLICAS (ingest's 451 and its log line).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import TopicPartition as KafkaTopicPartition

from shared.bus.base import BusMessage
from shared.bus.kafka import KafkaBus
from shared.config import KafkaConfig
from shared.errors import BusUnavailable
from shared.wire.topics import DEAD, SUBMITTED, OutRecord
from testing.harness.brokers import BrokerCluster


@pytest.fixture
def config(brokers: BrokerCluster) -> Iterator[KafkaConfig]:
    prefix = f"c{uuid.uuid4().hex[:10]}."
    yield KafkaConfig(bootstrap=brokers.bootstrap, topic_prefix=prefix)
    brokers.delete_topics(prefix)


@pytest.fixture
async def bus(config: KafkaConfig) -> AsyncIterator[KafkaBus]:
    bus = KafkaBus(config, instance=f"cluster-{uuid.uuid4().hex[:6]}")
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


async def _describe(config: KafkaConfig, topic: str) -> tuple[list[dict[str, object]], str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=config.bootstrap.split(","))
    await admin.start()
    try:
        [described] = await admin.describe_topics([config.topic_prefix + topic])
        resource = ConfigResource(ConfigResourceType.TOPIC, config.topic_prefix + topic)
        [response] = await admin.describe_configs([resource])
        entries = response.to_object()["resources"][0]["config_entries"]
        min_isr = next(
            e["config_value"] for e in entries if e["config_names"] == "min.insync.replicas"
        )
        return list(described["partitions"]), str(min_isr)
    finally:
        await admin.close()


@pytest.mark.cluster_ci
async def test_topics_a_stage_creates_are_replicated_like_the_cluster_default(
    brokers: BrokerCluster, config: KafkaConfig
) -> None:
    bus = KafkaBus(config, instance="creator")  # as shared.bus.factory opens it
    await bus.ensure_topics([DEAD.name])
    partitions, min_isr = await _describe(config, DEAD.name)
    assert {len(p["replicas"]) for p in partitions} == {3}  # type: ignore[arg-type]
    assert min_isr == "2"


@pytest.mark.cluster_ci
async def test_a_stale_leader_does_not_stall_a_first_position(
    brokers: BrokerCluster, config: KafkaConfig, bus: KafkaBus
) -> None:
    await bus.ensure_topics([DEAD.name])  # one partition
    await bus.publish([OutRecord(DEAD.name, b"k", b"v")], timeout=30)
    consumer = bus.consumer("stale", [DEAD.name])
    await consumer.start()
    try:
        raw = consumer._consumer  # type: ignore[attr-defined]
        tp = KafkaTopicPartition(config.topic_prefix + DEAD.name, 0)
        # What a consumer holds after leadership moved behind its back (a paused broker):
        # another replica, alive, recorded as the leader.
        cluster = raw._client.cluster
        current = cluster._partitions[tp.topic][0]
        other = next(r for r in current.replicas if r != current.leader)
        cluster._partitions[tp.topic][0] = current._replace(leader=other)
        await raw.seek_to_beginning(tp)  # no committed offset: a ListOffsets reset
        started = time.monotonic()
        found: list[BusMessage] = []
        while not found and time.monotonic() - started < 30:
            found = await consumer.fetch(timeout=0.5)
        assert [m.value for m in found] == [b"v"]
    finally:
        await consumer.stop()


async def test_too_few_in_sync_replicas_is_named_when_publishing_fails(
    brokers: BrokerCluster, config: KafkaConfig, bus: KafkaBus
) -> None:
    await bus.ensure_topics([SUBMITTED.name])
    wire = config.topic_prefix + SUBMITTED.name
    admin = AIOKafkaAdminClient(bootstrap_servers=config.bootstrap.split(","))
    await admin.start()
    try:
        raise_min = ConfigResource(ConfigResourceType.TOPIC, wire, {"min.insync.replicas": "3"})
        await admin.alter_configs([raise_min])
    finally:
        await admin.close()
    await asyncio.to_thread(brokers.kill, 3)
    try:
        # The controllers fence the dead broker (broker.session.timeout.ms, 9 s) and take it
        # out of every ISR: from then on acks=all cannot reach 3 copies.
        deadline = time.monotonic() + 60
        error: BusUnavailable | None = None
        while time.monotonic() < deadline:
            try:
                await bus.publish([OutRecord(SUBMITTED.name, b"k", b"v")], timeout=5)
            except BusUnavailable as exc:
                error = exc
                if "NOT_ENOUGH_REPLICAS" in str(exc):
                    break
        assert error is not None and "NOT_ENOUGH_REPLICAS" in str(error), error
        assert "min.insync.replicas" in str(error)
    finally:
        await asyncio.to_thread(brokers.restore)
