"""Static group membership on Kafka (KIP-345): a member restarted under its instance id gets
its partitions back without rebalancing the others; without it, everyone is rebalanced."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from shared.bus.base import Consumer, TopicPartition
from shared.bus.kafka import KafkaBus
from shared.config import KafkaConfig
from shared.wire.topics import SUBMITTED

pytestmark = pytest.mark.kafka

GROUP = "static-test"


class Member:
    """A started group member on its own bus, counting the revocations it is asked for."""

    def __init__(self, bus: KafkaBus, consumer: Consumer) -> None:
        self.bus = bus
        self.consumer = consumer
        self.revocations = 0
        consumer.on_revoke(self._revoked)

    async def _revoked(self) -> None:
        self.revocations += 1

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.bus.close()


Join = Callable[[str, bool], Awaitable["Member"]]


@pytest.fixture
async def join(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[Join]:
    config = KafkaConfig(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    started: list[Member] = []

    async def start(instance: str, static: bool) -> Member:
        bus = KafkaBus(config, instance=instance, static_members=static)
        await bus.ensure_topics([SUBMITTED.name])
        await bus.start()
        member = Member(bus, bus.consumer(GROUP, [SUBMITTED.name]))
        await member.consumer.start()
        started.append(member)
        return member

    yield start
    for member in started:
        await member.stop()


async def settled(*members: Member, partitions: int = SUBMITTED.partitions) -> None:
    """Wait until the members own every partition between them, each some (a rebalance is
    carried out while members fetch)."""
    for _ in range(200):
        for member in members:
            await member.consumer.fetch(timeout=0.05)
        owned = [member.consumer.assignment() for member in members]
        if all(owned) and sum(len(o) for o in owned) == partitions:
            return
    raise AssertionError(f"no stable assignment: {[sorted(o) for o in owned]}")


async def restart_second(
    join: Join, static: bool
) -> tuple[Member, frozenset[TopicPartition], frozenset[TopicPartition], Member]:
    first = await join("first", static)
    await settled(first)
    second = await join("second", static)
    await settled(first, second)
    before = second.consumer.assignment()
    first.revocations = 0
    await second.stop()  # a restarted pod: gone, and back under the same name
    again = await join("second", static)
    await settled(first, again)
    return first, before, again.consumer.assignment(), again


async def test_a_static_member_comes_back_to_its_partitions_without_a_rebalance(
    join: Join,
) -> None:
    first, before, after, _ = await restart_second(join, static=True)
    assert after == before
    assert first.revocations == 0


async def test_a_dynamic_member_coming_back_rebalances_the_group(
    join: Join,
) -> None:
    first, _, _, _ = await restart_second(join, static=False)
    assert first.revocations > 0
