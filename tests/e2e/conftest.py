"""One cluster per bus kind, shared by every scenario of a module (startup is the slow part).

- ``kafka``: the production shape, four stage processes on the real broker, with ingest
  refusing suppressed recipients at RCPT (``suppression = "refuse"``);
- ``embedded``: ``postline run``, one process on the SQLite bus, with ingest accepting and
  dropping suppressed recipients (``suppression = "drop"``), so both modes are covered.

Scenarios use distinct addresses, so they never see each other's mail or events. When a
module is done, every event its cluster wrote must match the published event schema.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testing import eventschema
from testing.harness.cluster import Cluster, ClusterOptions


@pytest.fixture(
    scope="module",
    params=[pytest.param("kafka", marks=pytest.mark.kafka), "embedded"],
)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A running cluster on the parametrized bus."""
    bus = request.param
    if bus == "kafka":
        options = ClusterOptions(
            bus="kafka",
            shape="split",
            workdir=tmp_path_factory.mktemp("cluster-kafka"),
            kafka_bootstrap=request.getfixturevalue("kafka_bootstrap"),
            suppression="refuse",
        )
    else:
        options = ClusterOptions(
            bus="embedded",
            shape="run",
            workdir=tmp_path_factory.mktemp("cluster-embedded"),
            suppression="drop",
        )
    running = Cluster(options)
    with running:
        yield running
        # Every event the stages wrote, from their real writers, is what docs/events.md
        # publishes for its kind (testing/eventschema.py says what that means).
        eventschema.assert_published(running.events.events())
    # SIGTERM must drain cleanly: a stage that crashes while stopping exits non-zero.
    assert running.exit_codes == dict.fromkeys(running.exit_codes, 0), running.exit_codes
