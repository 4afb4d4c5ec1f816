"""A bus of either kind for tests parametrised over the embedded bus and Kafka."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.bus.base import Bus
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.config import EmbeddedConfig, KafkaConfig
from shared.wire.records import new_id


def bus_of_kind(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, name: str, *, partitions: int = 2
) -> Bus:
    """A new, not yet started bus: ``embedded`` in ``tmp_path`` (``partitions`` each), or
    ``kafka`` on the test broker under the test's own topic prefix, its transactional
    identity starting with ``name``."""
    if kind == "embedded":
        return EmbeddedBus(EmbeddedConfig(path=tmp_path / "bus.db", partitions=partitions))
    bootstrap = str(request.getfixturevalue("kafka_bootstrap"))
    prefix = str(request.getfixturevalue("topic_prefix"))
    config = KafkaConfig(bootstrap=bootstrap, topic_prefix=prefix)
    return KafkaBus(config, instance=f"{name}-{new_id()[:8]}")
