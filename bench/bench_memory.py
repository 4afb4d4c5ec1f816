"""Memory benchmark (``make bench-memory``): peak RSS of a Postline process under large and
hostile input (issue 11, items 4 and 6).

Each scenario starts a fresh process (``postline ingest``, ``postline run`` or ``postline
bouncer``, on the embedded bus unless ``--kafka`` is given for ingest), waits for ``/readyz``,
reads its resident set size, drives the load from this process, samples ``VmRSS`` every 20 ms
meanwhile and reads the kernel's high-water mark ``VmHWM`` at the end; then it stops the
process by its PID. Scenarios:

- ``ingest-10mb``: one 10 MB message by DATA on the relay listener;
- ``ingest-bdat-flood``: 40 connections from one address, each ``BDAT 26214400 LAST`` and
  25 MiB of data, unauthenticated, on the submission listener (refused; RSS should stay flat);
- ``ingest-20x10mb``: 20 concurrent 10 MB messages (the process-wide body budget holds);
- ``run-20mib``: ``postline run`` (every stage in one process, embedded bus) delivering one
  20 MiB message to a local aiosmtpd sink through ``--deliver-to``, waited for until the sink
  has it;
- ``bouncer-http``: 300 connections to the bouncer's HTTP port, each a ``POST`` with
  ``Content-Length: 1048576`` and its body to the unauthenticated unsubscribe route.

Everything binds 127.0.0.1 and every wait has a deadline. Prints a table and writes
``bench/results/memory.json``. It asserts nothing: the figures are for the issue's note.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.procstats import peak_rss_mib
from bench.sink import Sink
from testing.harness.config import Ports, Settings, render
from testing.harness.materials import Materials, make_materials
from testing.harness.processes import clean_environ, log_tail, postline_argv
from testing.smtpsink import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "memory.json"
MIB = 1024 * 1024
SENDER = "app@bench.example"
_LINE = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"


def message(size: int) -> bytes:
    """A text message of ``size`` bytes, dot-safe (no line starts with a dot)."""
    head = f"From: Bench <{SENDER}>\r\nTo: rcpt@dest.example\r\nSubject: big\r\n\r\n".encode()
    body = _LINE * ((size - len(head)) // len(_LINE) + 1)
    return head + body[: size - len(head) - 2] + b"\r\n"


def vm_rss_mib(pid: int) -> float:
    """The process's resident set size now (``VmRSS``) in MiB; 0.0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Sampler(threading.Thread):
    """Samples a process's VmRSS every 20 ms until stopped; keeps the largest value."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.max_rss = pid, 0.0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.02):
            self.max_rss = max(self.max_rss, vm_rss_mib(self.pid))

    def stop(self) -> None:
        self._done.set()
        self.join()


class Process:
    """One ``postline`` process, stopped by its PID (SIGTERM, then SIGKILL past a deadline)."""

    def __init__(self, config: Path, args: list[str], http_port: int) -> None:
        self.log = config.parent / f"{args[0]}.log"
        self.http_port = http_port
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*postline_argv(), "--config", str(config), *args],
                # ``postline run`` in one process: this bench reads one PID's memory, and its
                # figures compare with the earlier single-process ones (stage commands
                # ignore the key).
                env=clean_environ(
                    {
                        "POSTLINE__HTTP__PORT": str(http_port),
                        "POSTLINE__RUNTIME__SEPARATE_PROCESSES": "[]",
                    }
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.http_port}/readyz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited {self.proc.returncode}:\n{log_tail(self.log)}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"not ready after {timeout:.0f}s:\n{log_tail(self.log)}")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class Figures:
    """One scenario's result, RSS in MiB."""

    scenario: str
    process: str
    baseline_mib: float
    peak_hwm_mib: float
    peak_sampled_mib: float
    after_mib: float
    growth_mib: float
    seconds: float
    outcome: dict[str, int] = field(default_factory=dict)


# -- SMTP and HTTP clients -------------------------------------------------------------------


async def reply(reader: asyncio.StreamReader) -> int:
    """The code of the next (possibly multi-line) SMTP reply; 0 when the server closed."""
    while True:
        line = await reader.readline()
        if not line:
            return 0
        if line[3:4] != b"-":
            return int(line[:3])


async def send_data(port: int, data: bytes) -> int:
    """One message by DATA on a relay listener; the final reply code."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reply(reader)
        writer.write(b"EHLO bench.example\r\n")
        await reply(reader)
        writer.write(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<rcpt@dest.example>\r\nDATA\r\n".encode())
        codes = [await reply(reader) for _ in range(3)]
        if codes != [250, 250, 354]:
            return codes[-1] or codes[0]
        view = memoryview(data)
        for start in range(0, len(data), MIB):
            writer.write(view[start : start + MIB])
            await writer.drain()
        writer.write(b".\r\n")
        return await reply(reader)
    finally:
        writer.close()


async def send_bdat(port: int, size: int) -> int:
    """``BDAT size LAST`` without AUTH; streams the data even if refused; the reply code."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    piece = b"x" * MIB
    try:
        await reply(reader)
        writer.write(b"EHLO bench.example\r\n")
        await reply(reader)
        writer.write(f"BDAT {size} LAST\r\n".encode())
        for start in range(0, size, MIB):
            writer.write(piece[: min(MIB, size - start)])
            await writer.drain()
        return await reply(reader)
    except ConnectionError:
        return 0
    finally:
        writer.close()


async def post_large(
    port: int, path: str, length: int, sent: list[int], gate: asyncio.Event
) -> int:
    """A POST with a ``length`` body; holds the connection until ``gate``; the status."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        sent.append(1)
        return -1
    try:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n\r\n"
        writer.write(head.encode() + b"x" * length)
        await writer.drain()
        sent.append(1)
        await gate.wait()
        line = await asyncio.wait_for(reader.readline(), 30)
        return int(line.split()[1]) if line.startswith(b"HTTP/") else 0
    except (ConnectionError, TimeoutError, ValueError, IndexError):
        return 0
    finally:
        writer.close()


def count(codes: list[int]) -> dict[str, int]:
    """Reply codes tallied (``0``: the connection was closed first)."""
    out: dict[str, int] = {}
    for code in codes:
        out[str(code)] = out.get(str(code), 0) + 1
    return dict(sorted(out.items()))


# -- scenarios -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Env:
    """What every scenario shares: a work directory, the materials, the options."""

    workdir: Path
    materials: Materials
    kafka: str | None
    timeout: float


def write_config(env: Env, name: str, ports: Ports, bus_kind: str) -> Path:
    directory = env.workdir / name
    directory.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        bus="kafka" if bus_kind == "kafka" else "embedded",
        workdir=directory,
        ports=ports,
        sender_domain="bench.example",
        bounce_domain="bounce.bench.example",
        unsubscribe_process=next(iter(ports.http)),
        kafka_bootstrap=env.kafka or "",
        topic_prefix=f"mem{os.getpid()}{name.replace('-', '')}.",
    )
    path = directory / "postline.toml"
    path.write_text(render(settings, env.materials).replace('level = "info"', 'level = "warning"'))
    return path


def ports_for(process: str) -> Ports:
    return Ports(
        submission=free_port(),
        relay=free_port(),
        bounce_intake=free_port(),
        http={process: free_port()},
        dns=free_port(),
        mx=free_port(),
    )


def measure(
    env: Env,
    scenario: str,
    command: list[str],
    load: Callable[[Ports], Awaitable[list[int]]],
    bus: str = "embedded",
) -> Figures:
    """Start a fresh process, run ``load`` against it, return its memory figures."""
    ports = ports_for(command[0])
    config = write_config(env, scenario, ports, bus)
    if bus == "kafka":
        topics = [*postline_argv(), "--config", str(config), "topics", "create"]
        subprocess.run(topics, env=clean_environ({}), capture_output=True, check=True, timeout=120)
    proc = Process(config, command, ports.http[command[0]])
    try:
        proc.wait_ready()
        time.sleep(1.0)
        baseline = vm_rss_mib(proc.proc.pid)
        sampler = Sampler(proc.proc.pid)
        sampler.start()
        started = time.monotonic()
        try:
            codes = asyncio.run(asyncio.wait_for(load(ports), env.timeout))
        except TimeoutError:
            codes = [-2]  # the scenario hit its deadline
        seconds = time.monotonic() - started
        time.sleep(2.0)  # let freed memory go back (or show that it stays)
        sampler.stop()
        hwm = peak_rss_mib(proc.proc.pid)
        after = vm_rss_mib(proc.proc.pid)
    finally:
        proc.stop()
    return Figures(
        scenario=scenario,
        process=f"postline {command[0]} ({bus})",
        baseline_mib=round(baseline, 1),
        peak_hwm_mib=round(hwm, 1),
        peak_sampled_mib=round(sampler.max_rss, 1),
        after_mib=round(after, 1),
        growth_mib=round(hwm - baseline, 1),
        seconds=round(seconds, 2),
        outcome=count(codes),
    )


async def one_10mb(ports: Ports) -> list[int]:
    return [await send_data(ports.relay, message(10 * 1000 * 1000))]


async def bdat_flood(ports: Ports) -> list[int]:
    return list(await asyncio.gather(*(send_bdat(ports.submission, 25 * MIB) for _ in range(40))))


async def twenty_10mb(ports: Ports) -> list[int]:
    data = message(10 * 1000 * 1000)
    return list(await asyncio.gather(*(send_data(ports.relay, data) for _ in range(20))))


def run_20mib(env: Env) -> Figures:
    """``postline run`` into a sink, one 20 MiB message, until the sink has it."""
    sink = Sink("127.0.0.1", free_port(), env.workdir / "sink", prefer_smtp_sink=False)
    sink.start()

    async def load(ports: Ports) -> list[int]:
        code = await send_data(ports.relay, message(20 * MIB))
        for _ in range(1200):  # the sink is another process: poll it, for 2 minutes at most
            if code != 250 or sink.count():
                break
            await asyncio.sleep(0.1)
        return [code, 1000 + sink.count()]  # 1001: the sink received it

    try:
        return measure(env, "run-20mib", ["run", "--deliver-to", f"127.0.0.1:{sink.port}"], load)
    finally:
        sink.stop()


async def bouncer_http(ports: Ports) -> list[int]:
    gate, sent = asyncio.Event(), []
    port = ports.http["bouncer"]
    tasks = [
        asyncio.ensure_future(post_large(port, "/unsubscribe/x", MIB, sent, gate))
        for _ in range(300)
    ]
    for _ in range(600):  # every request written (or refused), all held open: 30 s at most
        if len(sent) + sum(t.done() for t in tasks) >= len(tasks):
            break
        await asyncio.sleep(0.05)
    gate.set()
    return list(await asyncio.gather(*tasks))


def run_all(env: Env, only: list[str]) -> list[Figures]:
    ingest_bus = "kafka" if env.kafka else "embedded"
    scenarios: dict[str, Callable[[], Figures]] = {
        "ingest-10mb": lambda: measure(env, "ingest-10mb", ["ingest"], one_10mb, ingest_bus),
        "ingest-bdat-flood": lambda: measure(
            env, "ingest-bdat-flood", ["ingest"], bdat_flood, ingest_bus
        ),
        "ingest-20x10mb": lambda: measure(
            env, "ingest-20x10mb", ["ingest"], twenty_10mb, ingest_bus
        ),
        "run-20mib": lambda: run_20mib(env),
        "bouncer-http": lambda: measure(env, "bouncer-http", ["bouncer"], bouncer_http),
    }
    results = []
    for name, scenario in scenarios.items():
        if only and name not in only:
            continue
        print(f"{name} ...", flush=True)
        results.append(scenario())
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kafka", help="bootstrap of a Kafka broker for ingest (default: embedded)"
    )
    parser.add_argument("--only", nargs="*", default=[], help="scenario names to run")
    parser.add_argument("--timeout", type=float, default=240.0, help="deadline per scenario (s)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        workdir = Path(tmp)
        env = Env(workdir, make_materials(workdir, "bench.example"), args.kafka, args.timeout)
        results = run_all(env, args.only)
    head = (
        f"{'scenario':18} {'base':>7} {'peak':>7} {'growth':>7} {'after':>7} {'secs':>6}  outcome"
    )
    print(head + "\n" + "-" * len(head))
    for r in results:
        print(
            f"{r.scenario:18} {r.baseline_mib:>7} {r.peak_hwm_mib:>7} {r.growth_mib:>7} "
            f"{r.after_mib:>7} {r.seconds:>6}  {r.outcome}"
        )
    print("MiB; peak = VmHWM; outcome = reply codes (0: closed, 1001: delivered to the sink)")
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "ingest_bus": "kafka" if args.kafka else "embedded",
                "results": [asdict(r) for r in results],
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
