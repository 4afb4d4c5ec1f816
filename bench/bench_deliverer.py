"""Deliverer benchmark (``make bench-deliverer``): messages per second through one deliverer.

Pre-loads N Deliveries of 5 KB on the bus (embedded by default, Kafka with ``--kafka``), spread
over D recipient domains whose MX records (served by a loopback DNS server) point at counting
aiosmtpd sinks running in separate processes, then runs the deliverer stage until every
recipient got a 250 and reports msg/s, the deliverer process's CPU per message, the sinks'
CPU, and how throughput changes with the number of domains. Writes
``bench/results/deliverer.json`` (one entry per bus: ``embedded`` and ``kafka``).

Target (issue 5): >= 1,500 msg/s per deliverer process with connection reuse.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # testing, when run as a file

from services.deliverer.main import create
from shared.bus.base import Bus
from shared.bus.embedded import EmbeddedBus
from shared.config import Config, CoreConfig, EmbeddedConfig, KafkaConfig, RuntimeConfig
from shared.runtime.stage import StageContext
from shared.wire.records import Delivery, new_id
from shared.wire.topics import EVENTS, OUTBOUND
from testing.dnsserver import DnsServer

RESULTS = Path(__file__).parent / "results" / "deliverer.json"
TARGET = 1500.0
_LINE = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"
SINK_CODE = """
import asyncio, sys
from aiosmtpd.smtp import SMTP
class H:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 OK"
async def main(host, port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(H(), hostname="sink.bench"), host, port, backlog=4096
    )
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def message(size: int = 5 * 1024) -> bytes:
    """A text message of about ``size`` bytes."""
    headers = b"From: a@bench.example\r\nTo: r@dest.example\r\nSubject: bench\r\n\r\n"
    body = _LINE * ((size - len(headers)) // len(_LINE) + 1)
    return headers + body[: size - len(headers)]


def free_port(hosts: list[str]) -> int:
    """A port free on every address in ``hosts``."""
    while True:
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port: int = probe.getsockname()[1]
        try:
            for host in hosts[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
        except OSError:
            continue
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def start_sinks(hosts: list[str], port: int) -> list[asyncio.subprocess.Process]:
    """One counting aiosmtpd sink process per address."""
    sinks = []
    for host in hosts:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SINK_CODE, host, str(port), stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        await proc.stdout.readline()
        sinks.append(proc)
    return sinks


async def run_once(args: argparse.Namespace, domains: int, tmp: Path) -> dict[str, Any]:
    """Deliver ``args.messages`` over ``domains`` domains; the measured figures."""
    hosts = [f"127.0.0.{2 + i}" for i in range(args.sinks)]
    port = free_port(hosts)
    sinks = await start_sinks(hosts, port)
    records: dict[str, list[tuple[str, str]]] = {}
    for d in range(domains):
        records[f"d{d}.bench"] = [("MX", f"10 mx.d{d}.bench.")]
        records[f"mx.d{d}.bench"] = [("A", hosts[d % len(hosts)])]
    body = message()
    try:
        async with DnsServer(records, ttl=3600) as dns:
            bus, config = await open_bus(args, tmp, domains, dns.port, port)
            deliveries = [
                Delivery(
                    message_id=new_id(),
                    delivery_id=new_id(),
                    domain=f"d{i % domains}.bench",
                    mail_from="bounce@bench.example",
                    rcpt_to=(f"r{i}@d{i % domains}.bench",),
                    data=body,
                    submitted_at=time.time(),
                )
                for i in range(args.messages)
            ]
            for start in range(0, len(deliveries), 1000):
                await bus.publish([OUTBOUND.out(d) for d in deliveries[start : start + 1000]])
            result = await measure(bus, config, args.messages, sinks)
            await bus.close()
    finally:
        for proc in sinks:
            proc.kill()
            await proc.wait()
    return {"domains": domains, **result}


async def open_bus(
    args: argparse.Namespace, tmp: Path, domains: int, dns_port: int, smtp_port: int
) -> tuple[Bus, Config]:
    """A fresh bus and the config of the deliverer under test."""
    section = {
        "ehlo_name": "bench.postline.test",
        "nameservers": [f"127.0.0.1:{dns_port}"],
        "smtp_port": smtp_port,
        "max_in_flight": 5000,
        "fetch_batch": 1000,
        "flush_interval": "100ms",
        "defaults": {
            "max_connections": args.connections,
            "messages_per_connection": 1000,
            "window": 5000,
        },
    }
    embedded = EmbeddedConfig(path=tmp / f"bus-{domains}.db", partitions=4)
    kafka = KafkaConfig(bootstrap=args.kafka or "127.0.0.1:9092", topic_prefix=f"b{new_id()[:8]}.")
    core = CoreConfig(
        embedded=embedded, kafka=kafka, deliverer=section, runtime=RuntimeConfig(drain_timeout=30)
    )
    bus: Bus
    if args.kafka:
        from shared.bus.kafka import KafkaBus  # noqa: PLC0415

        bus = KafkaBus(kafka, instance=f"bench-{new_id()[:8]}")
    else:
        bus = EmbeddedBus(embedded)
    await bus.start()
    await bus.ensure_topics([OUTBOUND.name, EVENTS.name])
    return bus, Config(core, "bench", {})


async def measure(
    bus: Bus, config: Config, count: int, sinks: list[asyncio.subprocess.Process]
) -> dict[str, float]:
    """Run the stage until ``count`` recipients were delivered and committed."""
    registry = CollectorRegistry()
    ctx = StageContext(
        name="deliverer",
        config=config,
        bus=bus,
        registry=registry,
        log=logging.getLogger("bench"),
        stopping=asyncio.Event(),
        instance="bench",
    )
    stage = await create(ctx)
    task = asyncio.create_task(stage.run(ctx))
    await ctx.wait_ready()  # group joined: Kafka's join delay is not delivery time
    sink_cpu0 = sum(cpu_seconds(p.pid) for p in sinks)
    cpu0, t0 = time.process_time(), time.perf_counter()
    while delivered(registry) < count or stage.pending:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sink_cpu = sum(cpu_seconds(p.pid) for p in sinks) - sink_cpu0
    ctx.stopping.set()
    await task
    return {
        "messages": count,
        "seconds": round(elapsed, 3),
        "msg_per_s": round(count / elapsed, 1),
        "cpu_ms_per_msg": round(cpu / count * 1000, 3),
        "sink_cpu_ms_per_msg": round(sink_cpu / count * 1000, 3),
    }


def delivered(registry: CollectorRegistry) -> float:
    """Recipients delivered so far, from the deliverer's own counter."""
    total = 0.0
    for metric in registry.collect():
        if metric.name == "postline_deliverer_attempts":
            total += sum(
                s.value
                for s in metric.samples
                if s.name.endswith("_total") and s.labels.get("result") == "delivered"
            )
    return total


async def main() -> None:
    """Parse arguments, run each domain count, print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--domains", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--connections", type=int, default=10, help="max connections per domain")
    parser.add_argument("--sinks", type=int, default=2, help="sink processes (127.0.0.2...)")
    parser.add_argument("--kafka", default="", help="bootstrap; default: the embedded bus")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for domains in args.domains:
            result = await run_once(args, domains, Path(tmp))
            runs.append(result)
            print(
                f"domains={domains:3d}  {result['msg_per_s']:8.1f} msg/s  "
                f"cpu {result['cpu_ms_per_msg']:.3f} ms/msg (deliverer)  "
                f"{result['sink_cpu_ms_per_msg']:.3f} ms/msg (sinks)",
                flush=True,
            )
    bus = "kafka" if args.kafka else "embedded"
    run = {
        "bus": bus,
        "message_bytes": len(message()),
        "connections_per_domain": args.connections,
        "sink_processes": args.sinks,
        "target_msg_per_s": TARGET,
        "runs": runs,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    # One file, one entry per bus: a Kafka run keeps the last embedded figures and vice versa.
    report: dict[str, Any] = {"bench": "deliverer"}
    if RESULTS.exists():
        report.update(json.loads(RESULTS.read_text()))
    report[bus] = run
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    asyncio.run(main())
