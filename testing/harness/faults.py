"""A fault scenario on the three-broker cluster: Postline under a steady load, a fault, the
books.

    with FaultRun("leader-kill", brokers, workdir, rate=8.0) as run:
        run.sleep(8)                              # the load settles (the baseline)
        node = brokers.most_leaders(run.wire(SUBMITTED.name))
        run.mark("fault", f"kill -9 node {node}")
        brokers.kill(node)
        ...
        report = run.finish()                     # stop the load, drain, read, count
    report.counts.lost == 0

What :class:`FaultRun` does:

1. brings the brokers back to full health (:meth:`BrokerCluster.restore`) so each scenario
   starts from the same state;
2. starts the harness cluster (``testing.harness.cluster``: every stage as a process, topics
   with replication factor 3) with several recipient domains, so outbound partitions spread
   over the deliverers;
3. runs a :class:`~testing.harness.steady.SteadyLoad` on ingest's relay port, and a
   supervisor that restarts a stage process that exited on its own, as Kubernetes restarts
   a failed container (each restart is counted in the report; processes a scenario kills on
   purpose are left to it);
4. :meth:`finish`: stops the load, waits until every accepted message reached its sink (or
   the drain deadline), reads every topic read_committed and counts
   (``testing.harness.ledger``), and measures the recovery after each marked fault;
5. on leaving: stops the processes by PID, restores the brokers again and deletes the run's
   topics.

It injects no fault itself: scenarios do, through :class:`BrokerCluster` and the cluster.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from testing.harness.brokers import BrokerCluster
from testing.harness.cluster import Cluster, ClusterOptions, MxHost
from testing.harness.ledger import Counts, longest_gap, read_topics, recovery_seconds, tally
from testing.harness.steady import Attempt, SteadyLoad

#: The sender's own domain (DSNs) and six recipient domains (outbound is keyed by domain).
DOMAINS = tuple(f"d{i}.test" for i in range(1, 7))
MX_HOSTS = (
    MxHost("sender.test", "127.0.0.30"),
    *(MxHost(domain, f"127.0.0.{31 + i}") for i, domain in enumerate(DOMAINS)),
)


@dataclass(frozen=True)
class Mark:
    """A moment of the scenario: ``fault`` and ``repair`` marks are measured from."""

    kind: str  # "fault", "repair" or "note"
    what: str
    at: float  # epoch seconds


@dataclass
class Report:
    """What one scenario measured (the JSON report's entry)."""

    name: str
    rate: float
    counts: Counts
    marks: list[Mark]
    recovery: list[dict[str, Any]]  # per fault/repair mark: seconds to 90 % of the rate
    outage: float  # the longest stretch without a 250 after the first fault
    restarts: dict[str, int]  # stage processes restarted by the supervisor
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    seconds: float = 0.0

    def recovery_after(self, kind: str) -> float | None:
        """The largest recovery time after marks of ``kind`` (``None``: never recovered)."""
        values = [r["seconds"] for r in self.recovery if r["kind"] == kind]
        if not values:
            return None
        return None if None in values else max(values)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {
            "name": self.name,
            "rate": self.rate,
            "counts": self.counts.as_dict(),
            "marks": [m.__dict__ for m in self.marks],
            "recovery": self.recovery,
            "outage": self.outage,
            "restarts": self.restarts,
            "exit_codes": self.exit_codes,
            "seconds": round(self.seconds, 1),
        }


class FaultRun:
    """One scenario's cluster, load and books (see the module docstring)."""

    def __init__(
        self,
        name: str,
        brokers: BrokerCluster,
        workdir: Path,
        *,
        rate: float = 8.0,
        replicas: dict[str, int] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.brokers = brokers
        self.rate = rate
        self.options = ClusterOptions(
            bus="kafka",
            workdir=workdir,
            kafka_bootstrap=brokers.bootstrap,
            mx_hosts=MX_HOSTS,
            replicas=replicas or {},
            replication_factor=3,
            env=env or {},
            ready_timeout=120.0,
        )
        self.cluster = Cluster(self.options)
        self.marks: list[Mark] = []
        self.restarts: dict[str, int] = {}
        self.held_down: set[str] = set()  # processes the scenario stopped on purpose
        self._load: SteadyLoad | None = None
        self._attempts: list[Attempt] | None = None
        self._stop = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._started = 0.0

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> FaultRun:
        self._started = time.monotonic()
        self.brokers.restore()
        try:
            self.cluster.start()
        except BaseException:
            self.cluster.stop()
            raise
        self._load = SteadyLoad(
            port=self.cluster.ports.relay, rate=self.rate, recipient=self.recipient
        )
        self._load.start()
        self._supervisor.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._load is not None and self._attempts is None:
            self._load.stop()
        self._supervisor.join(10)
        self.cluster.stop()
        self.brokers.restore()
        self.brokers.delete_topics(self.cluster.topic_prefix)

    def recipient(self, seq: int) -> str:
        """The recipient of message ``seq``: unique in the run, domains in turn. Short on
        purpose: the VERP return path carries it next to a 39-character token, and the sink
        (aiosmtpd) refuses a local part past RFC 5321's 64 octets with 553 5.1.7."""
        return f"m{seq}@{DOMAINS[seq % len(DOMAINS)]}"

    def wire(self, topic: str) -> str:
        """The topic's name on the brokers (this run's prefix)."""
        return self.cluster.topic_prefix + topic

    def group(self, group: str) -> str:
        """A consumer group's name on the brokers."""
        return self.cluster.topic_prefix + group

    # -- during the scenario -----------------------------------------------------------

    def mark(self, kind: str, what: str) -> None:
        """Note a moment: ``fault`` (recovery is measured from it), ``repair``, ``note``."""
        self.marks.append(Mark(kind, what, time.time()))

    def sleep(self, seconds: float) -> None:
        """Let the load run ``seconds`` longer."""
        time.sleep(seconds)

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``check`` until it holds; fails naming ``what`` at the deadline."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: timed out after {timeout:.0f}s: {what}")
            time.sleep(0.2)

    def attempts(self) -> list[Attempt]:
        """The messages answered so far."""
        assert self._load is not None
        return self._load.snapshot()

    def log_since(self, process: str, offset: int) -> str:
        """What ``process`` logged after byte ``offset`` of its log."""
        with self.cluster.process(process).log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log_size(self, process: str) -> int:
        """The size of ``process``'s log now (for :meth:`log_since`)."""
        return self.cluster.process(process).log_path.stat().st_size

    def _supervise(self) -> None:
        while not self._stop.wait(1.0):
            for process in list(self.cluster.processes):
                if process.name in self.held_down or process.exited() is None:
                    continue
                self.restarts[process.name] = self.restarts.get(process.name, 0) + 1
                self.mark("note", f"{process.name} exited {process.exited()}, restarted")
                process.start()

    # -- the books ---------------------------------------------------------------------

    def finish(self, drain_timeout: float = 180.0) -> Report:
        """Stop the load, wait for the mail to arrive, read the topics, count."""
        assert self._load is not None
        self._attempts = attempts = self._load.stop()
        self.mark("note", "load stopped")
        wanted = {a.recipient.lower() for a in attempts if a.code == 250}

        def arrived() -> bool:
            return wanted <= set(self._received())

        deadline = time.monotonic() + drain_timeout
        while not arrived() and time.monotonic() < deadline:
            time.sleep(0.5)
        # The deliverer commits each flush: let its last events and offsets settle.
        time.sleep(3.0)
        self._stop.set()
        topics = read_topics(self.brokers.bootstrap, self.cluster.topic_prefix)
        counts = tally(attempts, self._received(), topics)
        return self._report(attempts, counts)

    def _received(self) -> list[str]:
        return [r.lower() for sink in self.cluster.sinks.values() for r in sink.recipients()]

    def _report(self, attempts: list[Attempt], counts: Counts) -> Report:
        accepted_at = [a.replied_at for a in attempts if a.code == 250]
        stopped = next(m.at for m in self.marks if m.what == "load stopped")
        recovery = [
            {
                "kind": m.kind,
                "what": m.what,
                "seconds": recovery_seconds(accepted_at, m.at, self.rate, until=stopped),
            }
            for m in self.marks
            if m.kind in ("fault", "repair")
        ]
        faults = [m.at for m in self.marks if m.kind == "fault"]
        outage = longest_gap(accepted_at, faults[0], stopped) if faults else 0.0
        return Report(
            name=self.name,
            rate=self.rate,
            counts=counts,
            marks=self.marks,
            recovery=recovery,
            outage=outage,
            restarts=dict(self.restarts),
            seconds=time.monotonic() - self._started,
        )
