"""The launcher itself: a valid config for every stage, the process layout, replicas on Kafka."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from shared.cli import discover_stages
from shared.config import load_config
from shared.wire.records import EventKind
from testing.harness import client
from testing.harness.cluster import Cluster, ClusterOptions
from testing.harness.config import Ports, Settings, render
from testing.harness.materials import make_materials


def _settings(tmp_path: Path, bus: str) -> Settings:
    ports = Ports(
        submission=2587,
        relay=2025,
        bounce_intake=2526,
        http={"bouncer": 9001, "ingest": 9002},
        dns=5353,
        mx=2500,
    )
    return Settings(
        bus=bus,  # type: ignore[arg-type]
        workdir=tmp_path,
        ports=ports,
        sender_domain="sender.test",
        bounce_domain="bounces.sender.test",
        unsubscribe_process="bouncer",
        kafka_bootstrap="127.0.0.1:29092",
        topic_prefix="hx.",
    )


@pytest.mark.parametrize("bus", ["kafka", "embedded"])
def test_rendered_config_passes_every_stage_check(tmp_path: Path, bus: str) -> None:
    materials = make_materials(tmp_path, "sender.test")
    path = tmp_path / "postline.toml"
    path.write_text(render(_settings(tmp_path, bus), materials))
    config = load_config(path, environ={})
    assert config.core.bus.kind == bus
    assert config.core.kafka.topic_prefix == ("hx." if bus == "kafka" else "")
    for spec in discover_stages():
        assert spec.check_config is not None
        spec.check_config(config)  # what `postline config check` runs; raises on a problem
    assert sorted(materials.dkim_txt) == [
        "h1ed25519._domainkey.sender.test",
        "h1rsa._domainkey.sender.test",
    ]


def test_process_layout_and_option_checks(tmp_path: Path) -> None:
    split = Cluster(ClusterOptions(bus="embedded", workdir=tmp_path, replicas={"deliverer": 2}))
    try:
        assert split.process_names() == [
            ("ingest", "ingest"),
            ("signer", "signer"),
            ("deliverer", "deliverer"),
            ("deliverer-2", "deliverer"),
            ("bouncer", "bouncer"),
            ("reputation", "reputation-stage"),
        ]
    finally:
        split.stop()
    with pytest.raises(ValueError, match="replicas"):
        Cluster(ClusterOptions(bus="embedded", workdir=tmp_path, replicas={"ingest": 2}))
    with pytest.raises(ValueError, match="kafka_bootstrap"):
        Cluster(ClusterOptions(bus="kafka", workdir=tmp_path))


@pytest.mark.kafka
def test_two_deliverers_share_the_work_and_stop_by_pid(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    options = ClusterOptions(
        bus="kafka",
        workdir=tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        replicas={"deliverer": 2},
        env={"POSTLINE__LOG__LEVEL": "warning"},
    )
    rcpts = [f"r{i}@{d}" for i in range(3) for d in ("alpha.test", "beta.test", "flaky.test")]
    with Cluster(options) as cluster:
        pids = cluster.pids
        assert set(pids) == {
            "ingest",
            "signer",
            "deliverer",
            "deliverer-2",
            "bouncer",
            "reputation",
        }
        data = client.message("app@sender.test", rcpts, "replicas", "Hi.\n")
        sent = client.submit(cluster, "app@sender.test", rcpts, data)
        assert sent.code == 250
        cluster.events.wait_for(EventKind.DELIVERED, len(rcpts), message_id=sent.message_id)
        received = Counter(r for sink in cluster.sinks.values() for r in sink.recipients())
        assert received == Counter(rcpts)  # every recipient exactly once
    assert cluster.exit_codes == dict.fromkeys(pids, 0)
    deadline = time.monotonic() + 5
    for pid in pids.values():  # reaped by stop(): the PIDs are gone
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
