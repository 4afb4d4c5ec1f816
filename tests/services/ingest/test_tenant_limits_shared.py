"""Two ingest processes enforce one tenant's limit together (real Kafka, real Redis).

The limit is a burst of 40 with a rate of one message per 1000 s, so what the test counts
(messages accepted out of 80 sent to both processes in turn) does not depend on how fast the
machine is: 40, whichever process each message reached, and not 80 (each process alone).
"""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from shared import tenant_admin
from shared.bus.kafka import KafkaBus
from shared.cli import main
from shared.config import KafkaConfig
from shared.wire.records import SendingDomain
from shared.wire.topics import all_topics
from testing.harness.processes import PostlineProcess, wait_ready
from testing.smtpsink import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

BURST = 40
SENT = 80


def config_text(bootstrap: str, prefix: str, redis: str, smtp: int, http: int) -> str:
    return f"""
[bus]
kind = "kafka"
[kafka]
bootstrap = "{bootstrap}"
topic_prefix = "{prefix}"
[limits]
backend = "redis"
redis_url = "{redis}"
key_prefix = "{prefix}limits:"
on_redis_failure = "closed"
[http]
port = {http}
[runtime]
instance = "ingest-{http}"
drain_timeout = "5s"
[ingest]
hostname = "mx.postline.test"
trusted_networks = ["127.0.0.0/8"]
[[ingest.listeners]]
name = "relay"
host = "127.0.0.1"
port = {smtp}
mode = "relay"
"""


@pytest.fixture
def two_ingests(
    tmp_path: Path, kafka_bootstrap: str, redis_url: str, topic_prefix: str
) -> Iterator[tuple[list[int], Path]]:
    ports = [free_port(), free_port()]
    processes = []
    for index, port in enumerate(ports):
        config = tmp_path / f"ingest{index}.toml"
        http = free_port()
        config.write_text(config_text(kafka_bootstrap, topic_prefix, redis_url, port, http))
        processes.append(PostlineProcess(f"ingest{index}", "ingest", config, http, {}))
    asyncio.run(add_tenant(kafka_bootstrap, topic_prefix))
    try:
        for process in processes:
            process.start()
        wait_ready(processes, 60)
        yield ports, tmp_path / "ingest0.toml"
    finally:
        for process in processes:
            process.stop()


async def add_tenant(bootstrap: str, prefix: str) -> None:
    bus = KafkaBus(KafkaConfig(bootstrap=bootstrap, topic_prefix=prefix), instance=uuid.uuid4().hex)
    await bus.start()
    try:
        await bus.ensure_topics([topic.name for topic in all_topics()])  # topics create
        await tenant_admin.add(bus, "acme", by="test")
        await tenant_admin.update(
            bus,
            "acme",
            lambda t: msgspec.structs.replace(
                t, domains=(SendingDomain(name="acme.test", verified=True),)
            ),
            by="test",
        )
        await tenant_admin.set_fields(
            bus, "acme", limits={"per_second": 0.001, "burst": BURST, "per_day": 1000}, by="test"
        )
    finally:
        await bus.close()


def test_two_ingest_processes_share_one_tenant_limit(
    two_ingests: tuple[list[int], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ports, config = two_ingests
    accepted = refused = 0
    for n in range(SENT):
        port = ports[n % 2]
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            try:
                client.sendmail(
                    "app@acme.test",
                    ["r@dest.test"],
                    f"From: app@acme.test\r\nSubject: {n}\r\n\r\nbody\r\n",
                )
                accepted += 1
            except smtplib.SMTPSenderRefused as exc:
                assert exc.smtp_code == 450, exc
                refused += 1
    assert accepted + refused == SENT
    # Within 10% of the one shared limit (40); each process alone would have taken 40.
    assert abs(accepted - BURST) <= BURST // 10, accepted
    # The operator's view of the same shared counters: refused messages consumed nothing.
    capsys.readouterr()
    assert main(["--config", str(config), "tenant", "usage", "acme"]) == 0
    [per_day] = [line for line in capsys.readouterr().out.splitlines() if "per_day" in line]
    assert per_day.split()[:4] == ["per_day", str(accepted), "/", "1000"]
