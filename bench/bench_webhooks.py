"""Webhooks benchmark (``make bench-webhooks``): events/s one webhooks process acknowledges,
and the event-to-acknowledgement p50/p99.

Publishes ``--events`` delivered events for ``--tenants`` tenants (one HTTPS endpoint each,
a local aiohttp receiver with a test CA: ``testing.webhooks``) onto ``postline.events``
(Kafka with ``--kafka``, else the embedded bus), runs one webhooks stage in this process and
waits until the receiver has acknowledged every event. The receiver runs in the same
process and shares its CPU, so the figure is a lower bound of what a stage does alone.
Latency is from the event's ``at`` (set when it is published) to the receiver's 2xx: with
``--rate 0`` (a burst) it includes the wait behind the whole burst; with ``--rate N`` it is
the latency at a steady N events/s.
Prints a table and writes ``bench/results/webhooks.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from services.webhooks import admin
from services.webhooks.config import load
from services.webhooks.stage import create, policy_of
from shared import tenant_admin
from shared.bus.base import Bus
from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig, KafkaConfig, load_config
from shared.sealing import load_keyring
from shared.wire.eventjson import event_id
from shared.wire.records import Event, EventKind
from shared.wire.topics import EVENTS, TENANTS
from testing.pki import make_pki
from testing.stage import stage_context
from testing.webhooks import Receiver

RESULTS = Path(__file__).parent / "results" / "webhooks.json"


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def open_bus(kafka: str, directory: Path) -> Bus:
    bus: Bus
    if kafka:
        from shared.bus.kafka import KafkaBus  # noqa: PLC0415

        prefix = f"bench{uuid.uuid4().hex[:8]}."
        bus = KafkaBus(KafkaConfig(bootstrap=kafka, topic_prefix=prefix), instance="bench-wh")
    else:
        bus = EmbeddedBus(EmbeddedConfig(path=directory / "bus.db", partitions=12))
    await bus.start()
    await bus.ensure_topics([EVENTS.name, TENANTS.name])
    return bus


async def bench(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    pki = make_pki(directory / "pki")
    (directory / "kek.key").write_text("33" * 32)
    path = directory / "postline.toml"
    path.write_text(
        f'[secrets]\nkek_file = "{directory / "kek.key"}"\n'
        f'[webhooks]\nca_file = "{pki.ca}"\nallow_private_networks = true\n'
    )
    config = load_config(path, environ={})
    bus = await open_bus(args.kafka, directory)
    published: dict[str, float] = {}
    async with Receiver(pki) as receiver:
        tenants = [f"bench-{n}" for n in range(args.tenants)]
        for tenant in tenants:
            await tenant_admin.add(bus, tenant, by="bench")
            await admin.add(
                bus,
                load_keyring(config),
                tenant,
                receiver.url(tenant),
                policy=policy_of(load(config)),
                batch=args.batch,
                by="bench",
            )
        ctx = stage_context("webhooks", config, bus)
        stage = await create(ctx)
        task = asyncio.create_task(stage.run(ctx))
        await asyncio.wait_for(ctx.wait_ready(), 120)
        started = time.time()
        # A burst (--rate 0) measures throughput; a steady rate, the latency at that load.
        step = max(1, args.rate // 10) if args.rate else 500
        for chunk in range(0, args.events, step):
            if args.rate:
                await asyncio.sleep(max(0.0, started + chunk / args.rate - time.time()))
            records = []
            for n in range(chunk, min(args.events, chunk + step)):
                event = Event(
                    kind=EventKind.DELIVERED,
                    message_id=uuid.uuid4().hex,
                    recipient=f"r{n}@example.com",
                    tenant=tenants[n % len(tenants)],
                    at=time.time(),
                )
                record = EVENTS.out(event)
                published[event_id(record.value or b"")] = event.at
                records.append(record)
            await bus.publish(records)

        def done() -> bool:
            return sum(len(receiver.behaviour(t).accepted) for t in tenants) >= args.events

        await receiver.wait_for(done, args.timeout)
        elapsed = time.time() - started
        latencies = [
            request.at - published[obj["id"]]
            for tenant in tenants
            for request in receiver.behaviour(tenant).requests
            for obj in request.events()
            if obj["id"] in published
        ]
        outcomes = {
            f"{sample.name.removeprefix('postline_webhooks_')}{sorted(sample.labels.values())}": (
                sample.value
            )
            for metric in (stage.metrics.deliveries, stage.metrics.deferred)
            for family in metric.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        }
        ctx.stopping.set()
        await task
    await bus.close()
    return {
        "bus": "kafka" if args.kafka else "embedded",
        "events": args.events,
        "tenants": args.tenants,
        "batch": args.batch,
        "rate": args.rate,
        "seconds": round(elapsed, 3),
        "events_per_second": round(args.events / elapsed, 1),
        "latency_p50_seconds": round(percentile(latencies, 50), 4),
        "latency_p99_seconds": round(percentile(latencies, 99), 4),
        "outcomes": outcomes,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kafka", default="", help="bootstrap address (else the embedded bus)")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1, help="events per request (endpoints)")
    parser.add_argument(
        "--rate", type=int, default=0, help="publish this many events/s (0: all at once)"
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="postline-bench-webhooks-") as tmp:
        result = asyncio.run(bench(args, Path(tmp)))
    columns = ("events", "tenants", "batch", "ev/s", "p50 s", "p99 s")
    print(f"{'bus':10} " + " ".join(f"{c:>8}" for c in columns))
    print(
        f"{result['bus']:10} {result['events']:>8} {result['tenants']:>8} {result['batch']:>8} "
        f"{result['events_per_second']:>8} {result['latency_p50_seconds']:>8} "
        f"{result['latency_p99_seconds']:>8}"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
