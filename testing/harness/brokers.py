"""The three-node Kafka test cluster as a fault injector and an informant.

    brokers = BrokerCluster("127.0.0.1:29192,127.0.0.1:29292,127.0.0.1:29392")
    node = brokers.most_leaders("hx.postline.submitted")
    brokers.kill(node)          # SIGKILL by PID: a crashed broker
    brokers.start(node)         # deploy/local/kafka.sh node-start N: back on its data
    brokers.terminate(node)     # SIGTERM: a controlled shutdown (a rolling restart's step)
    brokers.pause(node); brokers.resume(node)   # SIGSTOP / SIGCONT: a network pause
    brokers.wait_in_sync()      # every partition's ISR is its full replica set again
    brokers.restore()           # whatever happened: all nodes up, continued, in sync

Node N is the N-th address of the bootstrap list and ``node.id`` N, as
``deploy/local/kafka.sh cluster-up`` makes them. Processes are started and stopped through
that script (by PID, never by name); signals go to the PID the script's pidfile names.
What the cluster says (leaders, in-sync replicas, coordinators) comes from an admin client.

It owns no Postline process and no broker lifetime: the Makefile starts and stops the
cluster, scenarios only take nodes down and bring them back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient

KAFKA_SH = Path(__file__).resolve().parents[2] / "deploy" / "local" / "kafka.sh"
NODES = (1, 2, 3)
T = TypeVar("T")


class BrokerError(AssertionError):
    """A node could not be started, stopped or found as the scenario needs."""


class BrokerCluster:
    """The cluster of ``kafka.sh cluster-up`` (see the module docstring)."""

    def __init__(self, bootstrap: str, script: Path = KAFKA_SH) -> None:
        self.bootstrap = bootstrap
        self.script = script
        self.paused: set[int] = set()
        addresses = bootstrap.split(",")
        if len(addresses) != len(NODES):
            raise ValueError(f"expected {len(NODES)} addresses, got {bootstrap!r}")
        # kafka.sh finds the nodes from the first client port.
        self._env = {**os.environ, "POSTLINE_KAFKA_CLUSTER_PORT": addresses[0].rsplit(":")[-1]}

    # -- processes ---------------------------------------------------------------------

    def _script(self, *args: str, timeout: float = 120.0) -> str:
        done = subprocess.run(
            ["bash", str(self.script), *args],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise BrokerError(f"kafka.sh {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout.strip()

    def pid(self, node: int) -> int | None:
        """The node's broker PID, ``None`` when it is not running."""
        try:
            return int(self._script("node-pid", str(node)))
        except BrokerError:
            return None

    def alive(self, node: int) -> bool:
        """Whether the node's process runs (paused counts as running)."""
        return self.pid(node) is not None

    def kill(self, node: int) -> None:
        """SIGKILL the node (a crash: no controlled shutdown, unflushed pages lost to it)."""
        pid = self._require(node)
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 30.0)
        self.paused.discard(node)

    def terminate(self, node: int) -> None:
        """SIGTERM and wait: a controlled shutdown moves leadership away first."""
        self._script("node-stop", str(node))
        self.paused.discard(node)

    def start(self, node: int) -> None:
        """Start the node on its data; returns once it serves again."""
        self._script("node-start", str(node), timeout=180.0)

    def pause(self, node: int) -> None:
        """SIGSTOP: the process is frozen with its connections open (a network pause)."""
        os.kill(self._require(node), signal.SIGSTOP)
        self.paused.add(node)

    def resume(self, node: int) -> None:
        """SIGCONT after :meth:`pause`."""
        os.kill(self._require(node), signal.SIGCONT)
        self.paused.discard(node)

    def restore(self, timeout: float = 180.0) -> None:
        """Every node running and continued, every partition fully in sync."""
        for node in NODES:
            if node in self.paused:
                self.resume(node)
            if not self.alive(node):
                self.start(node)
        self.wait_in_sync(timeout)

    def _require(self, node: int) -> int:
        pid = self.pid(node)
        if pid is None:
            raise BrokerError(f"node {node} is not running")
        return pid

    # -- what the cluster says -----------------------------------------------------------

    def _admin(self, work: Callable[[AIOKafkaAdminClient], Awaitable[T]]) -> T:
        async def run() -> T:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap.split(","), request_timeout_ms=10_000
            )
            await admin.start()
            try:
                return await work(admin)
            finally:
                await admin.close()

        return asyncio.run(run())

    def partitions(self, prefix: str = "") -> list[dict[str, Any]]:
        """Every partition (``topic``, ``partition``, ``leader``, ``replicas``, ``isr``) of
        the topics starting with ``prefix`` (all topics, internal ones included, for "")."""

        async def describe(admin: AIOKafkaAdminClient) -> list[dict[str, Any]]:
            names = [t for t in await admin.list_topics() if t.startswith(prefix)]
            described = await admin.describe_topics(names) if names else []
            return [
                {
                    "topic": t["topic"],
                    "partition": p["partition"],
                    "leader": p["leader"],
                    "replicas": list(p["replicas"]),
                    "isr": list(p["isr"]),
                }
                for t in described
                for p in t["partitions"]
            ]

        return self._admin(describe)

    def delete_topics(self, prefix: str) -> None:
        """Delete every topic starting with ``prefix`` (a finished scenario's): thousands
        of partitions left behind would fill the small brokers' heaps."""
        if not prefix:
            raise ValueError("refusing to delete every topic: give a prefix")

        async def delete(admin: AIOKafkaAdminClient) -> None:
            names = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if names:
                await admin.delete_topics(names)

        self._admin(delete)

    def leaders(self, topic: str) -> dict[int, int]:
        """Partition -> leader node of one (wire) topic."""
        return {p["partition"]: p["leader"] for p in self.partitions(topic) if p["topic"] == topic}

    def most_leaders(self, topic: str) -> int:
        """The node leading most partitions of ``topic`` (the lowest id on a tie)."""
        counts = Counter(self.leaders(topic).values())
        return min(counts, key=lambda node: (-counts[node], node))

    def coordinator(self, group: str) -> int:
        """The node coordinating consumer group ``group`` (wire name)."""

        async def find(admin: AIOKafkaAdminClient) -> int:
            return int(await admin.find_coordinator(group))

        return self._admin(find)

    def under_replicated(self, prefix: str = "") -> list[str]:
        """``topic[partition]`` of every partition whose ISR is not its full replica set."""
        return [
            f"{p['topic']}[{p['partition']}]"
            for p in self.partitions(prefix)
            if sorted(p["isr"]) != sorted(p["replicas"]) or p["leader"] < 0
        ]

    def wait_in_sync(self, timeout: float = 180.0) -> None:
        """Poll until no partition of any topic is under-replicated (a restarted broker has
        caught up); fails with what is still behind at the deadline."""
        deadline = time.monotonic() + timeout
        behind: list[str] = []
        while time.monotonic() < deadline:
            try:
                behind = self.under_replicated()
            except Exception as exc:  # a node still starting: ask again
                behind = [repr(exc)]
            if not behind:
                return
            time.sleep(0.5)
        raise BrokerError(f"not in sync after {timeout:.0f}s: {behind[:10]}")


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):  # dead, not yet reaped by whoever adopted it
            return
        time.sleep(0.05)
    raise BrokerError(f"pid {pid} still alive {timeout:.0f}s after SIGKILL")
