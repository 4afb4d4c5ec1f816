"""The Postline cluster a benchmark drives: stage processes on Kafka (or one ``postline run``
process on the embedded bus), DNS and sink MX hosts.

Built from the end-to-end harness's parts (``tests/e2e``: the operator-made materials,
the rendered config file, ``postline <stage>`` processes with their own HTTP port and
instance name, readiness through ``/readyz``), with what a benchmark needs instead of the
harness's in-process test sinks: sink MX hosts in their own processes (``bench/sink.py``,
Postfix's ``smtp-sink`` when installed), so the sinks' CPU is neither the load generator's
nor the stages'; RSA-2048 only (the harness also signs with Ed25519); any number of replicas
per stage (scale-out); and the product's throughput defaults restored through environment
overrides, as Kubernetes would set them (``POSTLINE__SIGNER__BATCH_SIZE`` ...).

It does not generate load or measure: ``bench_pipeline.py`` and ``bench_scaleout.py`` do.
"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench.sink import Sink
from testing.dnsserver import DnsServer, Records
from testing.harness.config import BusKind, Ports, Settings, render
from testing.harness.loop import LoopThread
from testing.harness.materials import Materials, make_materials
from testing.harness.processes import PostlineProcess, run_command, wait_ready
from testing.smtpsink import free_port

STAGES = ("ingest", "signer", "deliverer", "bouncer")
SENDER_DOMAIN = "bench.example"

#: The product's defaults where the harness shortens timings for tests, plus bench settings.
BENCH_ENV = {
    "POSTLINE__SIGNER__BATCH_SIZE": "200",
    "POSTLINE__SIGNER__WORKERS": "0",
    "POSTLINE__DELIVERER__FLUSH_INTERVAL": '"0.2s"',
    "POSTLINE__KAFKA__COMPRESSION": '"none"',
    "POSTLINE__LOG__LEVEL": '"info"',
}


@dataclass(frozen=True)
class StackOptions:
    """How to build the cluster."""

    workdir: Path
    kafka: str  # bootstrap host:port
    domains: tuple[str, ...]  # recipient domains, each with its own MX record
    sink_hosts: int = 1  # sink processes, 127.0.0.2, 127.0.0.3, ... on one port
    replicas: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 1))
    env: dict[str, str] = field(default_factory=dict)  # POSTLINE__ overrides on top of BENCH_ENV
    rsa_only: bool = True  # drop the Ed25519 key the harness materials also make
    deferred: tuple[str, ...] = ()  # stages started later, by start_deferred() (a backlog)
    bus: BusKind = "kafka"  # "embedded": one ``postline run`` process on the SQLite bus


class Stack:
    """A running cluster; use it as a context manager."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.workdir = options.workdir
        self.loop = LoopThread("bench-dns")
        self.dns: DnsServer | None = None
        self.sinks: list[Sink] = []
        self.processes: list[PostlineProcess] = []
        self.topic_prefix = f"b{uuid.uuid4().hex[:10]}."
        self.config_path = self.workdir / "postline.toml"
        self.materials: Materials
        self.ports: Ports

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Materials, sinks, DNS, config, topics, processes; returns once all are ready."""
        o = self.options
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.materials = make_materials(self.workdir, SENDER_DOMAIN)
        if o.rsa_only:
            for path in self.materials.keys_dir.glob("*ed25519*"):
                path.unlink()
        hosts = tuple(f"127.0.0.{2 + i}" for i in range(o.sink_hosts))
        mx_port = free_port(hosts)
        self.sinks = [Sink(host, mx_port, self.workdir) for host in hosts]
        for sink in self.sinks:
            sink.start()
        self.dns = DnsServer(self.dns_records(hosts), ttl=3600)
        self.loop.call(self.dns.__aenter__())
        names = self.process_names()
        self.ports = Ports(
            submission=free_port(),
            relay=free_port(),
            bounce_intake=free_port(),
            http={name: free_port() for name in names},
            dns=self.dns.port,
            mx=mx_port,
        )
        self.config_path.write_text(render(self._settings(), self.materials))
        if o.bus == "kafka":
            run_command(["topics", "create"], self.config_path, self.workdir / "topics.log")
        self.processes = self._make_processes(names)
        now = [p for p in self.processes if p.command not in self.options.deferred]
        for process in now:
            process.start()
        wait_ready(now, 120)

    def start_deferred(self) -> None:
        """Start the deferred stages' processes; returns once they are ready."""
        later = [p for p in self.processes if p.command in self.options.deferred]
        for process in later:
            process.start()
        wait_ready(later, 120)

    def stop(self) -> None:
        """Stop the processes (by PID), the sinks and the DNS server."""
        for process in reversed(self.processes):
            if process.proc is not None:
                process.stop()
        for sink in self.sinks:
            sink.stop()
        if self.dns is not None and self.loop.loop.is_running():
            self.loop.call(self.dns.__aexit__(None, None, None))
        self.loop.stop()

    def process_names(self) -> list[str]:
        """``ingest``, ``signer``, ``signer-2``, ... in start order; ``run`` on the embedded bus."""
        if self.options.bus == "embedded":
            return ["run"]
        names = []
        for stage in STAGES:
            count = self.options.replicas.get(stage, 1)
            names += [stage if i == 0 else f"{stage}-{i + 1}" for i in range(count)]
        return names

    def dns_records(self, hosts: tuple[str, ...]) -> Records:
        """MX and A per recipient domain (spread over the sink hosts), DKIM TXT records."""
        records: Records = {}
        for i, domain in enumerate(self.options.domains):
            records[domain] = [("MX", f"10 mx.{domain}.")]
            records[f"mx.{domain}"] = [("A", hosts[i % len(hosts)])]
        for name, txt in self.materials.dkim_txt.items():
            records[name] = [("TXT", f'"{txt}"')]
        return records

    def _settings(self) -> Settings:
        return Settings(
            bus=self.options.bus,
            workdir=self.workdir,
            ports=self.ports,
            sender_domain=SENDER_DOMAIN,
            bounce_domain=f"bounces.{SENDER_DOMAIN}",
            unsubscribe_process="bouncer" if self.options.bus == "kafka" else "run",
            kafka_bootstrap=self.options.kafka,
            topic_prefix=self.topic_prefix,
        )

    def _make_processes(self, names: list[str]) -> list[PostlineProcess]:
        run_id = uuid.uuid4().hex[:8]
        env = {**BENCH_ENV, **self.options.env}
        return [
            PostlineProcess(
                name,
                name.split("-")[0],
                self.config_path,
                self.ports.http[name],
                {
                    **env,
                    "POSTLINE__HTTP__PORT": str(self.ports.http[name]),
                    "POSTLINE__RUNTIME__INSTANCE": f"bench-{run_id}-{name}",
                },
            )
            for name in names
        ]

    def metric(self, name: str, metric: str, **labels: str) -> float:
        """The sum of a metric's samples on one process's ``/metrics`` matching ``labels``."""
        url = f"http://127.0.0.1:{self.ports.http[name]}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == metric and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def pids(self) -> dict[str, int]:
        """Process name -> PID."""
        return {p.name: p.pid for p in self.processes}

    def assignments(self, name: str) -> list[str]:
        """The partitions a process was last assigned, per group, from its JSON log:
        ``"postline-deliverer: postline.outbound 0,2,4"``."""
        found: dict[str, str] = {}
        log = self.workdir / f"{name}.log"
        for line in log.read_text(errors="replace").splitlines():
            try:
                text = json.loads(line).get("event", "")
            except (json.JSONDecodeError, AttributeError):
                continue
            if ": assigned " in text:
                group, _, parts = text.partition(": assigned ")
                found[group.removeprefix("group ")] = _compact(parts, self.topic_prefix)
        return [f"{group}: {parts}" for group, parts in sorted(found.items())]


def _compact(assigned: str, prefix: str) -> str:
    """``TopicPartition(topic='p.postline.outbound', partition=3), ...`` as
    ``postline.outbound 3,...`` (one entry per topic)."""
    topics: dict[str, list[int]] = {}
    for topic, partition in re.findall(r"topic='([^']*)', partition=(\d+)", assigned):
        topics.setdefault(topic.removeprefix(prefix), []).append(int(partition))
    return "; ".join(
        f"{topic} {','.join(map(str, sorted(parts)))}" for topic, parts in sorted(topics.items())
    )
