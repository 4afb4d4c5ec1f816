"""Launch a whole Postline cluster for end-to-end tests and benchmarks.

    options = ClusterOptions(bus="kafka", workdir=tmp, kafka_bootstrap="127.0.0.1:29092")
    with Cluster(options) as cluster:            # shape="split": four stage processes
        cluster.ports.submission                 # ingest, STARTTLS + AUTH (cluster.materials)
        cluster.sink("alpha.test").messages      # what the sink MX host of alpha.test received
        cluster.events.wait_for(EventKind.DELIVERED, message_id=...)
        cluster.suppressions()                   # the suppression list now

What ``Cluster`` sets up, in order:

1. materials (``materials.py``): DKIM keys (RSA + Ed25519) for ``sender_domain``, the HMAC
   secret, a test CA with ingest's server certificate, a users file with one user;
2. on a background loop thread (``loop.py``): a DNS server on 127.0.0.1 serving each MX
   host's MX and A records and the DKIM TXT records, and one :class:`SmtpSink` per MX host on
   its own loopback address (127.0.0.x), all on one port (the deliverer's ``smtp_port``);
3. the config file (``config.py``); on Kafka a unique ``kafka.topic_prefix`` and
   ``postline topics create``;
4. the processes (``processes.py``): ``postline ingest|signer|deliverer|bouncer|reputation-stage``
   (shape ``split``, the production shape) or one ``postline run`` (shape ``run``), each with
   its own HTTP port; returns once every ``/readyz`` answers 200;
5. the observer (``observe.py``) following ``postline.events``.

Leaving the ``with`` block stops the processes by PID (SIGTERM, then SIGKILL; the codes are
in ``cluster.exit_codes``), then the observer, sinks and DNS server.

For benchmarks: ``ClusterOptions.env`` overrides any config key in every process
(``POSTLINE__SIGNER__WORKERS=0``, ``POSTLINE__LOG__LEVEL=warning``), ``replicas`` runs more
signer or deliverer processes in one consumer group (``{"deliverer": 2}``), ``cluster.pids``
names every process's PID (CPU and RSS from ``/proc``), and each process logs to
``<workdir>/<name>.log``. Scripting a sink (``script_rcpt`` ...) from the test thread
is safe: the scripts are deques the sink pops on the loop thread. ``cluster.call(work)`` runs
``work(bus)`` on the harness loop with the observer's bus (tenants, reputation records), and
``cluster.restart(name)`` stops one process by PID and starts it again.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar

from shared.bus.base import Bus
from shared.bus.embedded import EmbeddedBus
from shared.config import EmbeddedConfig, KafkaConfig
from shared.wire.records import Suppression
from testing.dnsserver import DnsServer, Records
from testing.harness.config import BusKind, Ports, Settings, SuppressionMode, render
from testing.harness.loop import LoopThread
from testing.harness.materials import Materials, make_materials
from testing.harness.observe import EventLog, read_suppressions
from testing.harness.processes import PostlineProcess, run_command, wait_ready
from testing.smtpsink import SmtpSink, free_port, server_tls_context

T = TypeVar("T")

Shape = Literal["split", "run"]
STAGES = ("ingest", "signer", "deliverer", "bouncer", "reputation")
#: The ``postline`` command of a stage whose command is not its name.
COMMANDS = {"reputation": "reputation-stage"}
SCALABLE = ("signer", "deliverer")  # stages that may run as several processes here


@dataclass(frozen=True)
class MxHost:
    """A recipient domain and its (only) MX host, a sink on ``address``."""

    domain: str
    address: str  # a loopback address, 127.0.0.x
    tls: bool = False  # offer STARTTLS (self-signed; the deliverer's TLS is opportunistic)


DEFAULT_MX_HOSTS = (
    MxHost("sender.test", "127.0.0.10"),  # the sender's own domain: DSNs come back here
    MxHost("alpha.test", "127.0.0.11", tls=True),
    MxHost("beta.test", "127.0.0.12"),
    MxHost("flaky.test", "127.0.0.13"),  # scripted 4xx then 2xx
    MxHost("reject.test", "127.0.0.14"),  # scripted 5xx
)


@dataclass(frozen=True)
class ClusterOptions:
    """How to build a cluster."""

    bus: BusKind
    workdir: Path
    shape: Shape = "split"
    kafka_bootstrap: str = ""  # required for bus="kafka"
    mx_hosts: tuple[MxHost, ...] = DEFAULT_MX_HOSTS
    sender_domain: str = "sender.test"  # the AUTH user's domain; DKIM keys are made for it
    bounce_domain: str = "bounces.sender.test"
    suppression: SuppressionMode = "refuse"  # ingest's mode for suppressed recipients
    ready_timeout: float = 90.0
    #: ``POSTLINE__*`` overrides for every process (``{"POSTLINE__SIGNER__WORKERS": "0"}``):
    #: the way to change a key the generated file already sets.
    env: dict[str, str] = field(default_factory=dict)
    #: Raw TOML tables appended to the file, for tables it does not write
    #: (``{"x": '[deliverer.domains."alpha.test"]\nmax_connections = 2'}``).
    extra_config: dict[str, str] = field(default_factory=dict)
    #: Extra processes of a stage in the split shape (``{"deliverer": 2}``): they join the
    #: same consumer groups. Only signer and deliverer, which listen on no fixed port.
    replicas: dict[str, int] = field(default_factory=dict)
    #: ``topics create --replication-factor`` (3 on the three-broker cluster of tests/cluster).
    replication_factor: int = 1


class Cluster:
    """A running cluster (see the module docstring); use it as a context manager."""

    def __init__(self, options: ClusterOptions) -> None:
        if options.bus == "kafka" and not options.kafka_bootstrap:
            raise ValueError("bus='kafka' needs kafka_bootstrap")
        if set(options.replicas) - set(SCALABLE) or (options.replicas and options.shape == "run"):
            raise ValueError(f"replicas: only {SCALABLE} and only with shape='split'")
        self.options = options
        self.workdir = options.workdir
        self.topic_prefix = f"h{uuid.uuid4().hex[:10]}." if options.bus == "kafka" else ""
        self.loop = LoopThread()
        self.sinks: dict[str, SmtpSink] = {}
        self.dns: DnsServer | None = None
        self.processes: list[PostlineProcess] = []
        self.exit_codes: dict[str, int | None] = {}  # set by stop(): process name -> code
        self._observer_bus: Bus | None = None
        self._events: EventLog | None = None
        self.materials: Materials
        self.ports: Ports
        self.config_path = self.workdir / "postline.toml"
        self._run_id = uuid.uuid4().hex[:8]

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Everything in the module docstring's order; returns once all processes are ready."""
        o = self.options
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.materials = make_materials(self.workdir, o.sender_domain)
        self.loop.call(self._start_network())
        self.ports = self._choose_ports()
        self.config_path.write_text(render(self._settings(), self.materials))
        if o.bus == "kafka":
            log = self.workdir / "topics.log"
            rf = ["--replication-factor", str(o.replication_factor)]
            run_command(["topics", "create", *rf], self.config_path, log, self.options.env)
        self.processes = self._make_processes()
        for process in self.processes:
            process.start()
        wait_ready(self.processes, o.ready_timeout)
        self._observer_bus = self._open_bus("observer")
        self._events = EventLog(self._observer_bus, self.loop)
        self._events.start()

    def stop(self) -> dict[str, int | None]:
        """Stop processes (by PID), observer, sinks and DNS; the processes' exit codes."""
        codes = {p.name: p.stop() for p in reversed(self.processes)}
        self.exit_codes.update(codes)
        if self._events is not None:
            self._events.close()
            self._events = None
        if self.loop.loop.is_running():
            self.loop.call(self._stop_network())
        self.loop.stop()
        return codes

    async def _start_network(self) -> None:
        addresses = tuple(host.address for host in self.options.mx_hosts)
        port = free_port(addresses)
        for host in self.options.mx_hosts:
            tls = server_tls_context(f"mx.{host.domain}") if host.tls else None
            sink = SmtpSink(host.address, port, tls_context=tls, hostname=f"mx.{host.domain}")
            await sink.start()
            self.sinks[host.domain] = sink
        self.dns = DnsServer(self.dns_records())
        await self.dns.__aenter__()

    async def _stop_network(self) -> None:
        for sink in self.sinks.values():
            await sink.refuse()
        if self.dns is not None:
            await self.dns.__aexit__(None, None, None)

    # -- building blocks -------------------------------------------------------------------

    def dns_records(self) -> Records:
        """MX and A records of every MX host, and the DKIM TXT records."""
        records: Records = {}
        for host in self.options.mx_hosts:
            records[host.domain] = [("MX", f"10 mx.{host.domain}.")]
            records[f"mx.{host.domain}"] = [("A", host.address)]
        for name, txt in self.materials.dkim_txt.items():
            records[name] = [("TXT", f'"{txt}"')]
        return records

    def process_names(self) -> list[tuple[str, str]]:
        """(process name, ``postline`` command) of every process, in start order."""
        if self.options.shape == "run":
            return [("run", "run")]
        names: list[tuple[str, str]] = []
        for stage in STAGES:
            count = max(1, self.options.replicas.get(stage, 1))
            command = COMMANDS.get(stage, stage)
            names += [(stage if i == 0 else f"{stage}-{i + 1}", command) for i in range(count)]
        return names

    def _choose_ports(self) -> Ports:
        names = [name for name, _ in self.process_names()]
        assert self.dns is not None
        return Ports(
            submission=free_port(),
            relay=free_port(),
            bounce_intake=free_port(),
            http={name: free_port() for name in names},
            dns=self.dns.port,
            mx=next(iter(self.sinks.values())).port,
        )

    def _settings(self) -> Settings:
        o = self.options
        return Settings(
            bus=o.bus,
            workdir=self.workdir,
            ports=self.ports,
            sender_domain=o.sender_domain,
            bounce_domain=o.bounce_domain,
            unsubscribe_process="bouncer" if o.shape == "split" else "run",
            kafka_bootstrap=o.kafka_bootstrap,
            topic_prefix=self.topic_prefix,
            suppression=o.suppression,
            extra=o.extra_config,
        )

    def _make_processes(self) -> list[PostlineProcess]:
        return [self._process(name, command) for name, command in self.process_names()]

    def _process(self, name: str, command: str) -> PostlineProcess:
        return PostlineProcess(
            name,
            command,
            self.config_path,
            self.ports.http[name],
            # Kubernetes sets these per pod: the HTTP port and the stable instance name
            # (it names the Kafka transactional ids, so it must differ per process; as a
            # StatefulSet's pod name it stays the same across restarts of one process).
            {
                **self.options.env,
                "POSTLINE__HTTP__PORT": str(self.ports.http[name]),
                "POSTLINE__RUNTIME__INSTANCE": f"harness-{self._run_id}-{name}",
            },
        )

    def _open_bus(self, role: str) -> Bus:
        if self.options.bus == "kafka":
            from shared.bus.kafka import KafkaBus  # noqa: PLC0415 (aiokafka only when used)

            config = KafkaConfig(
                bootstrap=self.options.kafka_bootstrap, topic_prefix=self.topic_prefix
            )
            return KafkaBus(config, instance=f"harness-{role}-{uuid.uuid4().hex[:8]}")
        return EmbeddedBus(EmbeddedConfig(path=self.workdir / "data" / "postline.db"))

    # -- what tests use --------------------------------------------------------------------

    @property
    def events(self) -> EventLog:
        """The observer of ``postline.events``."""
        assert self._events is not None, "the cluster is not running"
        return self._events

    @property
    def pids(self) -> dict[str, int]:
        """Process name (``ingest``, ``deliverer-2``, ``run`` ...) -> OS process id."""
        return {p.name: p.pid for p in self.processes}

    def call(self, work: Callable[[Bus], Awaitable[T]], timeout: float = 60.0) -> T:
        """``work(bus)`` run on the harness loop with the observer's bus: change tenants,
        read a compacted topic."""
        assert self._observer_bus is not None, "the cluster is not running"
        bus = self._observer_bus

        async def run() -> T:
            return await work(bus)

        return self.loop.call(run(), timeout)

    def restart(self, name: str) -> int | None:
        """Stop process ``name`` by PID (SIGTERM: it drains) and start it again; returns its
        exit code once it is ready again."""
        [process] = [p for p in self.processes if p.name == name]
        code = process.stop()
        process.start()
        wait_ready([process], self.options.ready_timeout)
        return code

    def process(self, name: str) -> PostlineProcess:
        """The process called ``name`` (``signer-2`` ...)."""
        [process] = [p for p in self.processes if p.name == name]
        return process

    def kill(self, name: str) -> None:
        """SIGKILL process ``name`` by its PID (a crash: no drain) and reap it."""
        self.process(name).kill()

    def start_again(self, name: str) -> None:
        """Start a stopped or killed process under its old name (and instance id, as a
        StatefulSet restarts a pod); returns once it is ready."""
        process = self.process(name)
        process.start()
        wait_ready([process], self.options.ready_timeout)

    def add_replica(self, stage: str) -> str:
        """Start one more process of a scalable stage (``signer-3``); its name once it is
        ready. Joining the stage's consumer groups, it starts a rebalance."""
        if stage not in SCALABLE or self.options.shape != "split":
            raise ValueError(f"replicas: only {SCALABLE} and only with shape='split'")
        count = sum(1 for p in self.processes if p.command == COMMANDS.get(stage, stage))
        name = f"{stage}-{count + 1}"
        self.ports.http[name] = free_port()
        process = self._process(name, COMMANDS.get(stage, stage))
        self.processes.append(process)
        process.start()
        wait_ready([process], self.options.ready_timeout)
        return name

    def sink(self, domain: str) -> SmtpSink:
        """The sink MX host of ``domain``."""
        return self.sinks[domain]

    def suppressions(self) -> dict[str, Suppression]:
        """The suppression list now (key -> record), read through the observer's bus."""
        assert self._observer_bus is not None, "the cluster is not running"
        return read_suppressions(self._observer_bus, self.loop)

    def http_url(self, process: str, path: str = "/") -> str:
        """``http://127.0.0.1:<port><path>`` of a process (``bouncer`` ... or ``run``)."""
        return f"http://127.0.0.1:{self.ports.http[process]}{path}"

    @property
    def bouncer_http(self) -> str:
        """The process serving the bouncer's HTTP routes (``bouncer`` or ``run``)."""
        return "bouncer" if self.options.shape == "split" else "run"
