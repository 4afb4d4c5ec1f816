"""Bus throughput: publish and consume-transform-produce 5 KiB records through each adapter.

    python bench/bench_bus.py [--kafka 127.0.0.1:29092] [--records 20000] [--batch 200]

For each adapter it measures
- publish: concurrent publishers (like ingest's SMTP sessions) sending one record each, so
  group commit is exercised; records/s and p99 acknowledgement latency;
- transform: one consumer reading the input topic in batches and, per batch, publishing one
  output per input and committing offsets in ONE transaction (the signer's loop); records/s
  and p99 commit latency.
Figures are printed as a table and written to bench/results/bus.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from shared.bus.base import Bus
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.config import EmbeddedConfig, KafkaConfig
from shared.wire.topics import OutRecord

RESULTS = Path(__file__).resolve().parent / "results" / "bus.json"


def p99(values: list[float]) -> float:
    """The 99th percentile of ``values`` (seconds)."""
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100)[98]


async def bench_publish(
    bus: Bus, topic: str, records: int, size: int, concurrency: int
) -> dict[str, float]:
    """``concurrency`` tasks publish one record per call until ``records`` are acknowledged."""
    payload = os.urandom(size)
    latencies: list[float] = []
    remaining = records

    async def publisher(worker: int) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            key = f"k{worker}-{remaining}".encode()
            start = time.perf_counter()
            await bus.publish([OutRecord(topic, key, payload)])
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(publisher(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {"records_per_s": records / elapsed, "p99_ack_ms": p99(latencies) * 1000}


async def bench_transform(
    bus: Bus, source: str, sink: str, records: int, batch: int
) -> dict[str, float]:
    """Read ``source`` and write one output per input to ``sink``, one transaction per batch."""
    consumer = bus.consumer(f"bench-{uuid.uuid4().hex[:8]}", [source])
    await consumer.start()
    commits: list[float] = []
    done = 0
    start = time.perf_counter()
    try:
        while done < records:
            messages = await consumer.fetch(max_records=batch, timeout=1.0)
            if not messages:
                continue
            t0 = time.perf_counter()
            async with consumer.transaction() as txn:
                offsets = {}
                for message in messages:
                    await txn.publish(OutRecord(sink, message.key, message.value))
                    offsets[message.tp] = message.offset + 1
                txn.commit_offsets(offsets)
            commits.append(time.perf_counter() - t0)
            done += len(messages)
    finally:
        await consumer.stop()
    elapsed = time.perf_counter() - start
    return {
        "records_per_s": done / elapsed,
        "p99_commit_ms": p99(commits) * 1000,
        "mean_batch": done / max(len(commits), 1),
    }


async def run_adapter(name: str, bus: Bus, args: argparse.Namespace) -> dict[str, object]:
    """Both measurements on one adapter."""
    source, sink = "bench.source", "bench.sink"
    await bus.start()
    try:
        await bus.ensure_topics([source, sink])
        publish = await bench_publish(bus, source, args.records, args.size, args.concurrency)
        transform = await bench_transform(bus, source, sink, args.records, args.batch)
    finally:
        await bus.close()
    return {"adapter": name, "publish": publish, "transform": transform}


def open_buses(args: argparse.Namespace, workdir: str) -> list[tuple[str, Bus]]:
    """The adapters to measure."""
    buses: list[tuple[str, Bus]] = [
        ("embedded", EmbeddedBus(EmbeddedConfig(path=Path(workdir) / "bench.db")))
    ]
    if args.kafka:
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        config = KafkaConfig(bootstrap=args.kafka, topic_prefix=prefix, compression="none")
        buses.append(("kafka", KafkaBus(config, instance=f"bench-{os.getpid()}")))
    return buses


async def main() -> int:
    """Run the benchmark and print and store the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kafka", default="", help="bootstrap of a Kafka broker to measure too")
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--size", type=int, default=5 * 1024)
    parser.add_argument("--batch", type=int, default=200, help="records per transaction")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent publishers")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, bus in open_buses(args, workdir):
            results.append(await run_adapter(name, bus, args))
    header = ("adapter", "publish rec/s", "p99 ack ms", "txn rec/s", "p99 commit ms")
    print(f"{header[0]:<10} {header[1]:>14} {header[2]:>11} {header[3]:>10} {header[4]:>14}")
    for r in results:
        pub, tr = r["publish"], r["transform"]
        assert isinstance(pub, dict) and isinstance(tr, dict)
        print(
            f"{r['adapter']:<10} {pub['records_per_s']:>14.0f} {pub['p99_ack_ms']:>11.1f} "
            f"{tr['records_per_s']:>10.0f} {tr['p99_commit_ms']:>14.1f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "records": args.records,
        "size": args.size,
        "batch": args.batch,
        "concurrency": args.concurrency,
    }
    RESULTS.write_text(json.dumps({"params": meta, "results": results}, indent=2))
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
