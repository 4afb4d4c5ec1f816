"""Measuring one run of ``make bench`` or ``make bench-compare``: what to meter, the load,
waiting for delivery, the figures, and the profilers around it.

Owns :func:`measure` (load one system, wait until the sink holds the mail, collect accept and
delivery latency, missing and duplicate messages, and CPU and peak RSS per process tree),
the processes to meter for a Postline stack (:func:`postline_roots`, the local broker's PID
from ``deploy/local/kafka.sh``'s pid file), the profilers of ``--profile`` (py-spy per
process, JFR for the broker) and the printing of one run. It does not start systems or
decide which runs to make: ``bench_pipeline.py`` does.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.jfr import BrokerProfile, JfrError
from bench.load import LoadResult, LoadSpec, percentile, run_load
from bench.procstats import Meter
from bench.profiling import Profiler, PySpy
from bench.sink import Sink
from bench.stack import STAGES, Stack

RESULTS = Path(__file__).parent / "results"


def broker_pid(bootstrap: str) -> int | None:
    """The local broker's PID (``deploy/local/kafka.sh`` pid file), if it runs here."""
    port = bootstrap.rpartition(":")[2]
    root = Path(os.environ.get("POSTLINE_KAFKA_CACHE", Path.home() / ".cache/postline/kafka"))
    pidfile = Path(os.environ.get("POSTLINE_KAFKA_RUN", root / f"run-{port}")) / "kafka.pid"
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def is_kafka_jvm(pid: int) -> bool:
    """``pid`` runs ``kafka.Kafka`` (a stale pid file may name another process)."""
    try:
        return b"kafka.Kafka" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def postline_roots(stack: Stack, kafka: str) -> dict[str, int]:
    """The process trees to meter for a Postline stack: its processes, the broker when it
    runs here (Kafka stacks), the sink and the load generator itself."""
    roots = dict(stack.pids())
    if stack.options.bus == "kafka" and (broker := broker_pid(kafka)):
        roots["kafka"] = broker
    roots["sink"] = stack.sinks[0].pid
    roots["loadgen"] = os.getpid()  # the load generator (and the DNS server thread)
    return roots


def warm_up(spec: LoadSpec, sink: Sink, done: Any) -> None:
    """A short run first: connections, MX cache, JIT-free but cold code paths, group joins."""
    sink.reset()
    warm = LoadSpec(**{**spec.__dict__, "messages": min(300, spec.messages)})
    load = asyncio.run(run_load(warm))
    wait_delivered(sink, load.accepted * spec.rcpts, done, timeout=120)


def measure(
    name: str,
    spec: LoadSpec,
    sink: Sink,
    roots: dict[str, int],
    done: Any,
    *,
    profilers: Sequence[Profiler] = (),
    amid_other_mail: bool = False,
) -> dict[str, Any]:
    """One measured run through one system: load, wait for delivery, collect the figures
    (``amid_other_mail``: the sink also receives other mail; wait for this run's by id).
    ``profilers`` cover the run; their summaries are under ``profiles`` by name."""
    if not amid_other_mail:
        sink.reset()
    started = start_profilers(profilers)
    try:
        meter = Meter(roots, alone=frozenset({"loadgen"}))
        meter.start()
        load = asyncio.run(run_load(spec))
        if amid_other_mail:
            complete = wait_messages(sink, load, timeout=300)
        else:
            complete = wait_delivered(sink, load.accepted * spec.rcpts, done, timeout=300)
        meter.stop()
    finally:  # an interrupted run must not leave py-spy or a JFR recording running
        profiles = stop_profilers(started)
    figures = {"system": name, **load.summary(), **delivery_figures(sink, load)}
    figures["complete"] = complete
    figures["restarted"] = meter.restarted()
    if figures["restarted"]:
        print(f"WARNING: {figures['restarted']} restarted during the run: figures invalid")
    figures["processes"] = meter.report(load.accepted)
    if profiles:
        figures["profiles"] = profiles
    return figures


def wait_delivered(sink: Sink, expected: int, done: Any, timeout: float) -> bool:
    """Poll until the sink holds ``expected`` transactions (or ``done()`` says the relay's
    queue is empty and nothing arrived for a second); False at the deadline."""
    deadline = time.monotonic() + timeout
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = sink.count()
        if count >= expected:
            return True
        if count != last:
            last, last_change = count, time.monotonic()
        elif done is not None and done() and time.monotonic() - last_change > 1.0:
            return True
        time.sleep(0.1)
    return False


def wait_messages(sink: Sink, load: LoadResult, timeout: float) -> bool:
    """Poll until the sink received every message ``load`` had accepted (other mail, such as
    a bulk backlog, may arrive meanwhile); False at the deadline."""
    wanted = set(load.accepted_at)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wanted <= {r.message_id for r in sink.receipts()}:
            return True
        time.sleep(0.5)
    return False


def delivery_figures(sink: Sink, load: LoadResult) -> dict[str, Any]:
    """Delivered rate, accept-to-delivered latency and duplicates from the sink's receipts."""
    receipts = [r for r in sink.receipts() if r.message_id in load.accepted_at]
    recipients = sum(r.rcpts for r in receipts)
    per_message: Counter[str] = Counter()
    last_at: dict[str, float] = {}
    for r in receipts:
        per_message[r.message_id] += r.rcpts
        last_at[r.message_id] = max(last_at.get(r.message_id, 0.0), r.at)
    duplicates = sum(max(0, n - load.recipients[m]) for m, n in per_message.items())
    end = max(last_at.values(), default=load.started_at)
    lags = [last_at[m] - load.accepted_at[m] for m in last_at]
    seconds = max(end - load.started_at, 1e-6)
    return {
        "delivered_recipients": recipients,
        "delivered_messages": len(last_at),
        "missing_messages": len(load.accepted_at) - len(last_at),
        "duplicate_recipients": duplicates,
        "delivered_seconds": round(seconds, 3),
        "delivered_per_s": round(recipients / seconds, 1),
        "e2e_p50_ms": round(percentile(lags, 0.50) * 1000, 1),
        "e2e_p99_ms": round(percentile(lags, 0.99) * 1000, 1),
    }


def print_run(r: dict[str, Any]) -> None:
    """One run as a few lines."""
    print(
        f"\n{r['system']}: accepted {r['accepted_per_s']}/s (p50 {r['accept_p50_ms']} ms, "
        f"p99 {r['accept_p99_ms']} ms), delivered {r['delivered_per_s']}/s "
        f"(accept->delivered p50 {r['e2e_p50_ms']} ms, p99 {r['e2e_p99_ms']} ms), "
        f"missing {r['missing_messages']}, duplicates {r['duplicate_recipients']}, "
        f"failed {r['failed']}"
    )
    print(f"  {'process':<10} {'cpu s':>7} {'cpu ms/msg':>11}  peak RSS MiB")
    for name, p in r["processes"].items():
        rss = ", ".join(f"{v:.0f}" for v in p["peak_rss_mib"][:6])
        print(f"  {name:<10} {p['cpu_s']:>7} {p['cpu_ms_per_msg']:>11}  {rss}")


def start_profilers(profilers: Sequence[Profiler]) -> list[Profiler]:
    """Start each profiler; those that started (one that cannot is reported and left out)."""
    started = []
    for profiler in profilers:
        try:
            profiler.start()
        except (OSError, JfrError, subprocess.SubprocessError) as exc:
            print(f"profile of {profiler.name} skipped: {exc}", flush=True)
            continue
        started.append(profiler)
    return started


def stop_profilers(profilers: Sequence[Profiler]) -> dict[str, str]:
    """Stop each profiler; its summary text by name (a failure is reported, the rest go on)."""
    texts = {}
    for profiler in profilers:
        try:
            texts[profiler.name] = profiler.stop()
        except (OSError, JfrError, subprocess.SubprocessError) as exc:
            print(f"profile of {profiler.name} failed: {exc}", flush=True)
    return texts


def profilers_for(choice: str, stack: Stack, kafka: str, workdir: Path) -> list[Profiler]:
    """The profilers of ``--profile choice``: py-spy per stage, JFR for the broker when its
    PID is known here and it is a Kafka JVM (else that one profile is skipped, said why)."""
    names = [*STAGES, "kafka"] if choice == "all" else [choice]
    pids = stack.pids()
    unknown = [n for n in names if n != "kafka" and n not in pids]
    if unknown:
        raise SystemExit(f"--profile {choice}: no {', '.join(unknown)} process in this stack")
    out: list[Profiler] = [
        PySpy(n, pids[n], workdir / f"profile-{n}.folded") for n in names if n != "kafka"
    ]
    if "kafka" in names:
        pid = broker_pid(kafka)
        if pid is None or not is_kafka_jvm(pid):
            print(
                f"broker profile skipped: no running Kafka JVM found for {kafka} "
                "(deploy/local/kafka.sh's pid file); a remote broker cannot be profiled from here",
                flush=True,
            )
        else:
            out.append(BrokerProfile(pid, workdir))
    return out


def write_profiles(texts: dict[str, str]) -> None:
    """Each summary to ``bench/results/profile-<name>.txt``."""
    RESULTS.mkdir(exist_ok=True)
    for name, text in texts.items():
        path = RESULTS / f"profile-{name}.txt"
        path.write_text(text)
        print(f"profile of {name}: {path}", flush=True)
