"""Where the Kafka broker's CPU goes during a benchmark run: JFR samples and per-thread CPU.

Two views of the broker JVM over the same window, both with the JDK's own tools (no agent):

- the CPU split by thread group, from ``jcmd <pid> Thread.print`` taken at the start and at
  the end: every thread line carries its ``nid`` (the OS thread id) and ``cpu=...ms``, so the
  difference is each thread's CPU in the window. This covers the VM's own threads too (GC,
  JIT compilers), which JFR's execution samples do not see;
- the hot methods, from a JFR recording (``JFR.start settings=profile`` ... ``JFR.stop``)
  printed with ``jfr print --events jdk.ExecutionSample``: samples of the Java threads that
  are running Java code (not native code, not waiting), every 1 ms instead of the profile's
  10 ms because a run is short and the broker spends much of its CPU in native socket and
  file I/O, counted by top frame (self) and by any frame (inclusive).

``jfr print``'s text form is parsed rather than ``--json``: with full stacks the JSON repeats
each frame's class, package and module (about 1.3 KB per frame), hundreds of MB for a run.
The ``jcmd`` and ``jfr`` used are those beside the broker's own ``java`` binary, so their
version matches the JVM's.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: ``"name" #12 daemon prio=5 os_prio=0 cpu=3479.27ms elapsed=675.45s tid=0x... nid=0x6666 ...``
#: (VM threads have no ``#12``; a thread without ``cpu=`` has not been measured yet).
_THREAD_LINE = re.compile(
    r'^"(?P<name>.*)" .*?\bcpu=(?P<cpu>[\d.]+)ms\b.*?\bnid=(?P<nid>0x[\da-f]+)'
)

#: Thread name patterns, first match wins, in the order the summary reads best. Kafka 4 names
#: its threads by role; the JVM's own threads are named by HotSpot.
THREAD_GROUPS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("network (socket reads/writes)", re.compile(r"network-thread|socket-acceptor")),
    ("request handlers (produce, fetch, commit)", re.compile(r"request-handler")),
    (
        "transactions (markers, AddPartitionsToTxn)",
        re.compile(r"TxnMarkerSender|AddPartitionsToTxn|transaction-log"),
    ),
    ("group coordinator", re.compile(r"group-coordinator|executor-group")),
    ("replication", re.compile(r"ReplicaFetcher|alter-partition")),
    (
        "log (scheduler: flush, retention; cleaner)",
        re.compile(r"kafka-scheduler|log-cleaner|LogDir"),
    ),
    ("purgatory (ExpirationReaper)", re.compile(r"ExpirationReaper|executor-Fetch")),
    ("KRaft controller and metadata", re.compile(r"raft|quorum-controller|metadata|controller")),
    ("GC (G1)", re.compile(r"^GC Thread|^G1 ")),
    ("JIT compiler", re.compile(r"CompilerThread|^Sweeper")),
    ("profiling itself (JFR, attach)", re.compile(r"^JFR |Attach Listener")),
    ("JVM other (VM thread, periodic tasks)", re.compile(r"^VM |Service Thread|Monitor Deflation")),
)
OTHER = "other"

#: An ``ExecutionSample`` stack frame line: ``    pkg.Class.method(Args) line: 12``.
_FRAME = re.compile(r"^\s+(?P<method>[^\s(]+)\((?P<args>[^)]*)\)")
_THREAD_FIELD = re.compile(r'^\s+sampledThread = "(?P<name>.*)" \(')


#: The execution sampling period set for a run (JFR's ``profile`` settings would take 10 ms).
SAMPLE_PERIOD_MS = 1


#: The header of ``Thread.print``'s output.
THREAD_DUMP = "Full thread dump"


class JfrError(RuntimeError):
    """A ``jcmd`` or ``jfr`` command failed; the message carries its output."""


@dataclass(frozen=True)
class JavaThread:
    """One line of ``Thread.print``: the OS thread id, the name and the CPU used so far."""

    nid: int
    name: str
    cpu_ms: float


@dataclass(frozen=True)
class Sample:
    """One ``jdk.ExecutionSample``: the sampled thread's name and its frames, top first."""

    thread: str
    frames: tuple[str, ...]


@dataclass
class HotMethods:
    """Execution samples counted by top frame, by any frame and by thread group."""

    total: int = 0
    own: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    groups: Counter[str] = field(default_factory=Counter)


def parse_thread_print(text: str) -> dict[int, JavaThread]:
    """The threads of a ``jcmd <pid> Thread.print`` output by OS thread id."""
    threads = {}
    for line in text.splitlines():
        match = _THREAD_LINE.match(line)
        if match:
            nid = int(match.group("nid"), 16)
            threads[nid] = JavaThread(nid, match.group("name"), float(match.group("cpu")))
    return threads


def thread_group(name: str) -> str:
    """The role of a broker thread by its name (:data:`THREAD_GROUPS`), else :data:`OTHER`."""
    for group, pattern in THREAD_GROUPS:
        if pattern.search(name):
            return group
    return OTHER


def cpu_split(before: dict[int, JavaThread], after: dict[int, JavaThread]) -> dict[str, float]:
    """CPU ms per thread group between two ``Thread.print`` snapshots. A thread started in
    between counts from zero; one that ended in between is lost (its CPU is unknown)."""
    split: dict[str, float] = {}
    for nid, thread in after.items():
        start = before.get(nid)
        # Same nid, other name: the OS reused the id of a thread that ended.
        base = start.cpu_ms if start is not None and start.name == thread.name else 0.0
        if thread.cpu_ms > base:
            group = thread_group(thread.name)
            split[group] = split.get(group, 0.0) + thread.cpu_ms - base
    return split


def parse_samples(lines: Iterable[str]) -> Iterator[Sample]:
    """The samples of ``jfr print --events jdk.ExecutionSample`` text output, in order."""
    thread, in_stack = "", False
    frames: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.endswith("{") and not stripped.startswith("stackTrace"):
            thread, frames, in_stack = "", [], False
        elif (match := _THREAD_FIELD.match(line)) is not None:
            thread = match.group("name")
        elif stripped == "stackTrace = [":
            in_stack = True
        elif in_stack and stripped == "]":
            in_stack = False
        elif in_stack and (frame := _FRAME.match(line)) is not None:
            frames.append(frame.group("method"))
        elif stripped == "}" and not in_stack:
            yield Sample(thread, tuple(frames))


def hot_methods(samples: Iterable[Sample]) -> HotMethods:
    """Count ``samples``: the top frame is where the CPU was spent (self), every distinct
    frame of the stack was on the way there (inclusive; recursion counted once)."""
    hot = HotMethods()
    for sample in samples:
        hot.total += 1
        hot.groups[thread_group(sample.thread)] += 1
        if sample.frames:
            hot.own[sample.frames[0]] += 1
        for frame in set(sample.frames):
            hot.inclusive[frame] += 1
    return hot


def _share(count: float, total: float) -> str:
    return f"{count / total:6.1%}" if total else "     -"


def by_size(values: Mapping[str, float]) -> list[tuple[str, float]]:
    """``values``' items, largest first."""
    return sorted(values.items(), key=lambda item: -item[1])


def summarise(cpu: Mapping[str, float], seconds: float, hot: HotMethods, top: int = 25) -> str:
    """The broker's summary text: CPU by thread group, then the hot methods."""
    cpu_total = sum(cpu.values())
    lines = [
        f"broker CPU over {seconds:.1f} s: {cpu_total / 1000:.2f} s "
        f"({cpu_total / 1000 / max(seconds, 1e-9):.2f} cores), from jcmd Thread.print",
        "",
        "CPU by thread group:",
    ]
    lines += [f"  {_share(ms, cpu_total)}  {ms:9.0f} ms  {name}" for name, ms in by_size(cpu)]
    lines += ["", f"JFR execution samples (Java code only): {hot.total}", "", "by thread group:"]
    lines += [f"  {_share(n, hot.total)}  {name}" for name, n in hot.groups.most_common()]
    lines += ["", f"self time (top {top}):"]
    lines += [f"  {_share(n, hot.total)}  {name}" for name, n in hot.own.most_common(top)]
    lines += ["", f"inclusive time (top {top}):"]
    lines += [f"  {_share(n, hot.total)}  {name}" for name, n in hot.inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def jdk_bin(pid: int) -> Path:
    """The ``bin`` directory of the JDK running ``pid`` (its ``jcmd`` and ``jfr``)."""
    return Path(f"/proc/{pid}/exe").resolve().parent


class BrokerProfile:
    """A JFR recording and two thread snapshots of the broker JVM ``pid`` around a run.

    ``start()`` before the load, ``stop()`` after it; ``stop`` returns the summary text.
    The recording file goes to ``workdir`` (the broker writes it: same host, same user).
    """

    name = "kafka"
    #: the recording's own limit; :meth:`stop` ends it long before.
    MAX_SECONDS = 1800

    def __init__(self, pid: int, workdir: Path) -> None:
        self.pid = pid
        self.bin = jdk_bin(pid)
        self.recording = workdir / "broker.jfr"
        self.recording_name = f"postline-bench-{pid}"
        self._before: dict[int, JavaThread] = {}
        self._started = 0.0

    def _jcmd(self, *args: str, expect: str) -> str:
        """Run ``jcmd <pid> args``; its output, which must contain ``expect``: jcmd exits 0
        on most command errors ("Could not stop recording ...")."""
        result = subprocess.run(
            [str(self.bin / "jcmd"), str(self.pid), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0 or expect not in result.stdout:
            raise JfrError(f"jcmd {' '.join(args)}: {result.stdout}{result.stderr}".strip())
        return result.stdout

    def start(self) -> None:
        """Snapshot the threads' CPU and start the recording."""
        self._before = parse_thread_print(self._jcmd("Thread.print", expect=THREAD_DUMP))
        self._started = time.monotonic()
        self._jcmd(
            "JFR.start",
            f"name={self.recording_name}",
            "settings=profile",
            f"jdk.ExecutionSample#period={SAMPLE_PERIOD_MS}ms",
            f"filename={self.recording}",
            # the broker may be shared: a bench killed before stop() must not leave it recording
            f"duration={self.MAX_SECONDS}s",
            expect="Started recording",
        )

    def stop(self, top: int = 25) -> str:
        """Stop the recording, snapshot the threads again; the summary text."""
        self._jcmd("JFR.stop", f"name={self.recording_name}", expect="Stopped recording")
        after = parse_thread_print(self._jcmd("Thread.print", expect=THREAD_DUMP))
        seconds = time.monotonic() - self._started
        printer = subprocess.Popen(
            [
                str(self.bin / "jfr"),
                "print",
                "--events",
                "jdk.ExecutionSample",
                "--stack-depth",
                "64",
                str(self.recording),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert printer.stdout is not None
        with printer:
            hot = hot_methods(parse_samples(printer.stdout))
        if printer.returncode != 0:
            raise JfrError(f"jfr print {self.recording} exited {printer.returncode}")
        return summarise(cpu_split(self._before, after), seconds, hot, top)
