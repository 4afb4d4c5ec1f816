"""Exactly-once on Kafka: SIGKILL a real ``postline signer`` mid-stream, restart it, and a
read_committed reader sees each Delivery exactly once."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest

from shared.bus.base import BusMessage
from shared.bus.kafka import KafkaBus
from shared.config import KafkaConfig
from shared.wire.records import ClientInfo, Delivery, Submission, new_id
from shared.wire.topics import DEAD, EVENTS, OUTBOUND, SUBMITTED, SUPPRESSIONS
from tests.services.signer.conftest import SECRET

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
TOTAL = 150
KILL_AFTER = 20  # deliveries seen before the SIGKILL
DEADLINE = 120.0
MESSAGE = b"From: a@example.test\r\nTo: r@one.test\r\nSubject: once\r\n\r\nbody\r\n"


def write_config(tmp_path: Path, keys_dir: Path) -> Path:
    secret = tmp_path / "verp.key"
    secret.write_bytes(SECRET)
    path = tmp_path / "postline.toml"
    path.write_text(
        '[log]\nlevel = "warning"\n\n[http]\nport = 0\n\n'
        f'[signer]\nkeys_dir = "{keys_dir}"\nsecret_file = "{secret}"\n'
        # Small batches: many transactions, so the kill lands inside one.
        'bounce_domain = "bounces.example.test"\nworkers = 1\nbatch_size = 5\n'
    )
    return path


async def start_signer(config: Path, bootstrap: str, prefix: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "POSTLINE__BUS__KIND": "kafka",
        "POSTLINE__KAFKA__BOOTSTRAP": bootstrap,
        "POSTLINE__KAFKA__TOPIC_PREFIX": prefix,
        # The same instance after the restart: its transactional id fences the killed one.
        "POSTLINE__RUNTIME__INSTANCE": "signer-0",
    }
    code = "import sys; from shared.cli import main; sys.exit(main())"
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "--config", str(config), "signer", cwd=ROOT, env=env
    )


async def collect(bus: KafkaBus, into: list[Delivery]) -> None:
    message: BusMessage
    async for message in bus.follow(OUTBOUND.name, from_beginning=True):
        if message.value is not None:
            into.append(OUTBOUND.decode(message.value))


async def until(condition: object, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not condition():  # type: ignore[operator]
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_sigkill_mid_stream_each_delivery_once(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, keys_dir: Path
) -> None:
    config = write_config(tmp_path, keys_dir)
    bus = KafkaBus(KafkaConfig(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix), "tester")
    await bus.start()
    seen: list[Delivery] = []
    children: list[asyncio.subprocess.Process] = []
    await bus.ensure_topics(
        [SUBMITTED.name, OUTBOUND.name, EVENTS.name, SUPPRESSIONS.name, DEAD.name]
    )
    # Follow only once the topic exists, so the reader sees all of its partitions.
    reader = asyncio.create_task(collect(bus, seen))
    try:
        subs = [
            Submission(
                id=new_id(),
                received_at=1.0,
                client=ClientInfo(ip="127.0.0.1"),
                mail_from="a@example.test",
                rcpt_to=(f"r{i}@one.test",),
                data=MESSAGE,
            )
            for i in range(TOTAL)
        ]
        await bus.publish([SUBMITTED.out(s) for s in subs])

        children.append(await start_signer(config, kafka_bootstrap, topic_prefix))
        await until(lambda: len(seen) >= KILL_AFTER, f"{KILL_AFTER} deliveries")
        children[0].send_signal(signal.SIGKILL)
        assert await children[0].wait() == -signal.SIGKILL
        killed_at = len(seen)
        assert killed_at < TOTAL, "the signer finished before the kill; raise TOTAL"

        children.append(await start_signer(config, kafka_bootstrap, topic_prefix))
        wanted = {s.id for s in subs}
        await until(lambda: {d.message_id for d in seen} >= wanted, "every message signed")
        children[1].send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(children[1].wait(), DEADLINE) == 0
        await asyncio.sleep(1.0)  # anything published late would show up by now
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await bus.close()

    counts = collections.Counter(d.message_id for d in seen)
    duplicates = {mid: n for mid, n in counts.items() if n != 1}
    assert not duplicates, f"deliveries seen more than once: {duplicates}"
    assert set(counts) == wanted
    assert all(d.data.startswith(b"DKIM-Signature:") for d in seen)
